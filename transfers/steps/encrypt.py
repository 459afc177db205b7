"""Seal one recipient's outbox: the prepared rows as CSV parts signed by the sender and encrypted to the
recipient's pinned key, then the manifest's detached signature, then the manifest.

Re-running is safe: an outbox with a manifest is sealed and reused as it is (a fresh
encryption would be a different file under a name the recipient may already hold).
The manifest is written last, after its signature, so a manifest means a complete,
signed outbox. The sender's private signing key comes from the secrets backend and is
checked against the sender's pinned ``signing_fingerprint`` before anything is written.
A key refused by the checks is recorded in the ledger before it stops the run. The parts
are built and encrypted by worker processes (``encrypt_parts``, ``TRANSFERS_ENCRYPT_WORKERS``),
compressed as ``TRANSFERS_COMPRESSION`` says; this process holds no plaintext, each worker
one part's at a time.

Manifest (``MANIFEST_FORMAT`` 2): ``format``, ``agreement`` {id, version, sha256 of the
agreement file}, ``flow``, ``logical_date``, ``sender``, ``recipient``,
``recipient_fingerprint``, ``sender_signing_fingerprint``, ``fields`` [{name, share, to?}],
``formula_escape``, ``rows``, ``files`` [{name, size, sha256, rows}], ``retention``
{controller, period, destroy_by}, ``sender_ledger_head`` {seq, hash} (also as
``ledger_head``, which the archive's ledger check reads), ``created_at``.

Three phases, which ``encrypt`` (``transfers run``) runs in one process and the DAG runs as tasks
(``pipeline.Mapped``): ``plan_encrypt`` checks both keys and names the parts (small values; none
when the outbox is sealed already), ``encrypt_part`` encrypts one part (a mapped task each), and
``seal_encrypt`` checks every planned part is in the outbox exactly as its task reported it, then
writes the manifest as ``encrypt`` does. A part without a manifest is never delivered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypedDict

from transfers.agreement.signoff import agreement_sha256
from transfers.files import private_dir, write_atomic
from transfers.ledger.records import RecipientKeyRefused
from transfers.logs import Progress, get_logger

if TYPE_CHECKING:
    from pathlib import Path

    from transfers.agreement import Recipient
    from transfers.crypto import RecipientKey, SigningKey
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger
    from transfers.steps.encrypt_parts import EncryptedPart, Job, Part

log = get_logger(__name__)

#: A recipient key that ends within this is a warning each night; within ``load_recipient_key``'s margin
#: (7 days) it is refused and nothing is sent.
KEY_WARNING = timedelta(days=30)

#: Bumped when a manifest key changes meaning or goes away (a recipient checks it before reading on).
MANIFEST_FORMAT = 2


class EncryptResult(TypedDict):
    files: int
    rows: int
    reused: bool


class PlannedPart(TypedDict):
    """A part as the planning task hands it to its mapped task: small values only (no rows, no keys)."""

    index: int
    name: str
    start: int
    rows: int


@dataclass(frozen=True)
class _Plan:
    signer: SigningKey
    key: RecipientKey
    parts: list[Part]


def encrypt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> EncryptResult:
    """Encrypt the prepared rows to the recipient's pinned key, into its outbox."""
    from transfers.steps.encrypt_parts import encrypt_all

    plan = _plan(run, resolvers, ledger, recipient)
    if plan is None:
        return _reused(run, recipient)
    progress = Progress(log, "encrypting", **run._ctx(recipient=recipient.partner))

    def report(part: EncryptedPart) -> None:
        # A line a part at debug; at info only now and then, so a night of many parts reads in a few lines.
        log.debug("part encrypted", **run._ctx(recipient=recipient.partner, name=part["name"], rows=part["rows"],
                                               size=part["size"]))
        progress.step(rows=part["rows"], bytes=part["size"])

    outbox = run.outbox_dir(recipient)
    run.staging.fetch_stage("prepared")  # the workers read the run folder and know no work store
    files = [dict(part) for part in encrypt_all(_jobs(run, plan.key, plan.signer, outbox, plan.parts), report)]
    return _seal(run, recipient, ledger, plan.signer, files)


def plan_encrypt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> list[PlannedPart]:
    """The parts to encrypt (index, name, start, rows), after both keys are checked; none if the outbox is sealed.

    Parts an earlier, unsealed attempt left in the outbox are removed: the seal accepts only the parts planned.
    """
    plan = _plan(run, resolvers, ledger, recipient)
    if plan is None:
        return []
    _remove_parts(run.outbox_dir(recipient), run.base_name)
    return [PlannedPart(index=i, name=p.name, start=p.start, rows=p.rows) for i, p in enumerate(plan.parts)]


def encrypt_part(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient,
                 part: PlannedPart) -> EncryptedPart:
    """Encrypt one planned part into the outbox (signed, to the pinned key, atomically); what the manifest lists.

    Raises:
        StateError: ``part`` is not one the prepared stage's row count names (the stage or
            ``delivery_max_rows`` changed since the plan), or the sealed outbox does not list it.
    """
    from transfers.crypto import load_recipient_key
    from transfers.errors import StateError
    from transfers.steps.encrypt_parts import Part, encrypt_job

    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if manifest_path.exists():
        # Sealed already (this task cleared after its seal): the sealed file stands. A fresh encryption would
        # put a different file under a name the recipient may already hold.
        sealed = {f["name"]: f for f in json.loads(manifest_path.read_text())["files"]}
        if part["name"] not in sealed:
            raise StateError(f"{manifest_path}: the sealed outbox does not list part {part['name']!r}")
        return sealed[part["name"]]
    wanted = Part(part["name"], part["start"], part["rows"])
    if wanted not in _parts(run):
        raise StateError(f"{outbox}: part {part['name']!r} (rows {part['start']:,}+{part['rows']:,}) is not one the "
                         f"prepared stage names now (delivery_max_rows {run.settings.delivery_max_rows:,}); "
                         f"run encrypt_{recipient.partner} again")
    signer = sender_signing_key(run, resolvers)
    # Checked again here (a part may run a while after the plan); a refusal was recorded by the plan.
    key = load_recipient_key(run.settings.keys / recipient.key_file, recipient.pgp_fingerprint)
    private_dir(outbox)
    [job] = _jobs(run, key, signer, outbox, [wanted], workers=1)
    # The run's own staging: in a task of the S3 work store it fetches only the staging parts holding these rows.
    [made] = encrypt_job(job, lambda _part: None, lambda: False, run.staging)
    log.info("part encrypted", **run._ctx(recipient=recipient.partner, name=made["name"], rows=made["rows"],
                                          size=made["size"]))
    return made


def seal_encrypt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient,
                 planned: Sequence[PlannedPart], made: Sequence[EncryptedPart]) -> EncryptResult:
    """Check every planned part is in the outbox as its task reported it, then write the one signed manifest.

    Raises:
        StateError: A part missing, extra, or not the file (size, sha256, rows) its task reported, each
            named; the outbox's unsealed parts are removed, so nothing of it can be delivered.
    """
    from transfers.errors import StateError

    outbox = run.outbox_dir(recipient)
    if (outbox / f"{run.base_name}.manifest.json").exists():
        return _reused(run, recipient)
    if not planned:
        raise StateError(f"{outbox}: no parts were planned and the outbox is not sealed; "
                         f"run encrypt_{recipient.partner} again")
    if problems := _part_problems(outbox, run.base_name, planned, made):
        _remove_parts(outbox, run.base_name)
        raise StateError(f"{outbox}: not sealed, " + "; ".join(problems)
                         + f"; its parts were removed: run encrypt_{recipient.partner} again")
    by_name = {m["name"]: m for m in made}
    # The manifest's key order (name, size, sha256, rows), in the plan's order.
    files: list[dict[str, Any]] = [{"name": p["name"], "size": by_name[p["name"]]["size"],
                                    "sha256": by_name[p["name"]]["sha256"], "rows": p["rows"]}
                                   for p in sorted(planned, key=lambda p: p["index"])]
    return _seal(run, recipient, ledger, sender_signing_key(run, resolvers), files)


def _plan(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> _Plan | None:
    """Both keys checked and the parts named; None (logged) when a previous attempt sealed the outbox."""
    partner = recipient.partner
    outbox = run.outbox_dir(recipient)
    if (outbox / f"{run.base_name}.manifest.json").exists():
        # A previous attempt sealed this outbox: sending a fresh encryption would put a
        # different file under a name the recipient may already hold.
        return None
    signer = sender_signing_key(run, resolvers)  # before anything is written: no secret, nothing sealed
    key = _recipient_key(run, recipient, ledger)
    if note := key_expiry_warning(key, partner, datetime.now(UTC)):
        log.warning("recipient key expiring", **run._ctx(recipient=partner, fingerprint=key.fingerprint, detail=note))
    private_dir(outbox)
    return _Plan(signer, key, _parts(run))


def _parts(run: FlowRun) -> list[Part]:
    from transfers.steps.encrypt_parts import plan_parts

    return plan_parts(run.staging.rows("prepared"), run.settings.delivery_max_rows, run.base_name)


def _reused(run: FlowRun, recipient: Recipient) -> EncryptResult:
    manifest = json.loads((run.outbox_dir(recipient) / f"{run.base_name}.manifest.json").read_text())
    log.info("outbox reused", **run._ctx(recipient=recipient.partner, files=len(manifest["files"]),
                                         rows=manifest["rows"], bytes=sum(f["size"] for f in manifest["files"])))
    return {"files": len(manifest["files"]), "rows": manifest["rows"], "reused": True}


def _seal(run: FlowRun, recipient: Recipient, ledger: Ledger, signer: SigningKey,
          files: list[dict[str, Any]]) -> EncryptResult:
    """The manifest, subjects sealed, the detached signature, then the manifest itself (the mark of a sealed outbox)."""
    from transfers.crypto import sign_detached
    from transfers.diskspace import writing
    from transfers.privacy.step import seal_subjects

    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    manifest = build_manifest(run, recipient, files, ledger, signer)
    seal_subjects(run, outbox)  # before the manifest: a sealed outbox always names its subjects
    data = json.dumps(manifest, indent=2).encode("utf-8")
    with writing(outbox, "the delivery manifest"):
        # The signature first: a manifest (the mark of a sealed outbox) always has its signature beside it.
        write_atomic(signature_path(manifest_path), sign_detached(data, signer))
        write_atomic(manifest_path, data)
    log.info("encrypted", **run._ctx(recipient=recipient.partner, files=len(files), rows=manifest["rows"],
                                     bytes=sum(f["size"] for f in files)))
    return {"files": len(files), "rows": manifest["rows"], "reused": False}


def _part_files(outbox: Path, base_name: str) -> list[Path]:
    """The delivery's part files in the outbox: ``<base>.csv.pgp`` or ``<base>_partNNNofMMM.csv.pgp``."""
    return sorted([*outbox.glob(f"{base_name}.csv.pgp"), *outbox.glob(f"{base_name}_part*of*.csv.pgp")])


def _remove_parts(outbox: Path, base_name: str) -> None:
    for path in _part_files(outbox, base_name):
        path.unlink(missing_ok=True)


def _part_problems(outbox: Path, base_name: str, planned: Sequence[PlannedPart],
                   made: Sequence[EncryptedPart]) -> list[str]:
    """Each planned part missing or not as its task reported it, and each part nobody planned, by name."""
    from transfers.files import sha256_size

    problems: list[str] = []
    reported = {m["name"]: m for m in made}
    names = {p["name"] for p in planned}
    for part in sorted(planned, key=lambda p: p["index"]):
        name, path = part["name"], outbox / part["name"]
        got = reported.get(name)
        if got is None:
            problems.append(f"part {name} was planned but no part task reported it")
        elif not path.exists():
            problems.append(f"part {name} is missing")
        elif got["rows"] != part["rows"]:
            problems.append(f"part {name} holds {got['rows']:,} rows, {part['rows']:,} planned")
        elif sha256_size(path) != (got["size"], got["sha256"]):
            problems.append(f"part {name} is not the file its task wrote (size or sha256 differs)")
    for name in sorted(set(reported) - names):
        problems.append(f"part {name} was reported but not planned")
    for path in _part_files(outbox, base_name):
        if path.name not in names and path.name not in reported:
            problems.append(f"part {path.name} is in the outbox but was not planned")
    return problems


def key_expiry_warning(key: RecipientKey, partner: str, now: datetime) -> str:
    """What to do about a recipient key that ends within ``KEY_WARNING`` of ``now`` (empty: nothing)."""
    if key.expires_at is None or key.expires_at - now > KEY_WARNING:
        return ""
    days = (key.expires_at - now).days
    return (f"the key expires on {key.expires_at:%Y-%m-%d} (in {days} days) and is refused from 7 days before; "
            f"ask {partner} to extend it or send a new key, and pin that")


def signature_path(manifest_path: Path) -> Path:
    """The manifest's detached ASCII-armoured signature: ``<base>.manifest.json.asc``."""
    return manifest_path.with_name(manifest_path.name + ".asc")


def sender_signing_key(run: FlowRun, resolvers: Resolvers) -> SigningKey:
    """The sending party's private signing key from the secrets backend, checked against its pin.

    Raises:
        SecretMissing: ``transfers_signing_key`` is not set.
        KeyRefused: It is not the sender's pinned ``signing_fingerprint`` (both named), or fails a key check.
    """
    from transfers.crypto import party_signing_key

    return party_signing_key(resolvers.secret, run.config.protocol, run.ref.flow.from_)


def build_manifest(run: FlowRun, recipient: Recipient, files: list[dict[str, Any]], ledger: Ledger,
                   signer: SigningKey) -> dict[str, Any]:
    """What the recipient checks a delivery against (see the module docstring for the keys)."""
    agreement, flow = run.ref.agreement, run.ref.flow
    head = ledger.head()
    ledger_head = {"seq": head.seq, "hash": head.hash} if head else None
    retention = agreement.retention
    fields = []
    for name, spec in flow.fields.items():
        if spec.share == "drop":
            continue
        fields.append({"name": name, "share": spec.share, **({"to": spec.to} if spec.to else {})})
    return {
        "format": MANIFEST_FORMAT,
        "agreement": {"id": agreement.id, "version": agreement.version,
                      # The exact text both partners hold: a recipient with another version can tell.
                      "sha256": agreement_sha256(run.ref.path)},
        "flow": flow.id,
        "logical_date": run.ds,
        "sender": flow.from_,
        "recipient": recipient.partner,
        "recipient_fingerprint": recipient.pgp_fingerprint,
        "sender_signing_fingerprint": signer.fingerprint,
        "fields": fields,
        # The recipient needs to know whether a leading ' was added, to load values exactly (csv_escape).
        "formula_escape": flow.csv.formula_escape,
        "rows": sum(f["rows"] for f in files),
        "files": files,
        "retention": {"controller": retention.controller, "period": str(retention.period),
                      "destroy_by": retention.period.after(run.logical_date).isoformat()},
        # The ledger's head travels with every delivery, so a ledger cut short after this
        # point can be shown against a copy held by the recipient. ``ledger_head`` is the
        # same value under the name the archive's ledger check has always read.
        "sender_ledger_head": ledger_head,
        "ledger_head": ledger_head,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _recipient_key(run: FlowRun, recipient: Recipient, ledger: Ledger) -> RecipientKey:
    """The recipient's checked key; a refusal is recorded in the ledger and the run log before it stops the run."""
    from transfers.crypto import load_recipient_key
    from transfers.errors import KeyRefused, TransferError

    try:
        return load_recipient_key(run.settings.keys / recipient.key_file, recipient.pgp_fingerprint)
    except KeyRefused as exc:
        # Who was not sent to, and why, is evidence for the IG officer; the reason names the
        # key file and fingerprints only, never key material.
        refused = RecipientKeyRefused(agreement=run.ref.agreement.id, flow=run.ref.key,
                                      logical_date=run.logical_date, recipient=recipient.partner,
                                      partner=recipient.partner, fingerprint=recipient.pgp_fingerprint,
                                      key_file=recipient.key_file, reason=str(exc))
        log.error("recipient key refused", **run._ctx(**refused.to_payload()))
        try:
            ledger.record(refused)
        except TransferError as ledger_exc:  # the refusal still stops the run; say the record is missing
            log.error("key refusal not recorded in the ledger", **run._ctx(error=str(ledger_exc)))
        if exc.revoked:
            from transfers.incidents import record_incident
            from transfers.ledger.records.incidents import KEY_REVOKED

            record_incident(ledger, run.ref.agreement, what=KEY_REVOKED, party=run.ref.flow.from_, flow=run.ref.key,
                            logical_date=run.logical_date, partner=recipient.partner, where=recipient.key_file,
                            evidence=recipient.pgp_fingerprint, detail=str(exc), settings=run.settings)
        raise


def _jobs(run: FlowRun, key: RecipientKey, signer: SigningKey, outbox: Path, parts: list[Part],
          workers: int | None = None) -> list[Job]:
    """The parts split into one contiguous run per worker (``encrypt_workers`` unless ``workers`` says)."""
    from transfers.steps.encrypt_parts import Job, worker_count

    settings = run.settings
    workers = workers or worker_count(settings.encrypt_workers, len(parts))
    columns = run.staging.columns("prepared")
    return [Job(run_dir=run.staging.run_dir, staging_key=run.staging_key, columns=columns,
                formula_escape=run.ref.flow.csv.formula_escape,
                parts=tuple(parts[len(parts) * i // workers: len(parts) * (i + 1) // workers]), outbox=outbox,
                recipient_key_file=key.path, recipient_fingerprint=key.fingerprint, recipient_armored=key.armored,
                signer_fingerprint=signer.fingerprint, signer_armored=signer.armored,
                signer_passphrase=signer.passphrase, compression=settings.compression,
                level=settings.compression_level)
            for i in range(workers)]
