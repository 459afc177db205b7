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
"""

from __future__ import annotations

import json
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
    from transfers.steps.encrypt_parts import EncryptedPart, Job

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


def encrypt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> EncryptResult:
    """Encrypt the prepared rows to the recipient's pinned key, into its outbox."""
    from transfers.crypto import sign_detached
    from transfers.diskspace import writing
    from transfers.privacy.step import seal_subjects
    from transfers.steps.encrypt_parts import encrypt_all

    partner = recipient.partner
    outbox = run.outbox_dir(recipient)

    progress = Progress(log, "encrypting", **run._ctx(recipient=partner))

    def report(part: EncryptedPart) -> None:
        # A line a part at debug; at info only now and then, so a night of many parts reads in a few lines.
        log.debug("part encrypted", **run._ctx(recipient=partner, name=part["name"], rows=part["rows"],
                                               size=part["size"]))
        progress.step(rows=part["rows"], bytes=part["size"])

    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if manifest_path.exists():
        # A previous attempt sealed this outbox: sending a fresh encryption would put a
        # different file under a name the recipient may already hold.
        manifest = json.loads(manifest_path.read_text())
        log.info("outbox reused", **run._ctx(recipient=partner, files=len(manifest["files"]), rows=manifest["rows"],
                                             bytes=sum(f["size"] for f in manifest["files"])))
        return {"files": len(manifest["files"]), "rows": manifest["rows"], "reused": True}

    signer = sender_signing_key(run, resolvers)  # before anything is written: no secret, nothing sealed
    key = _recipient_key(run, recipient, ledger)
    if note := key_expiry_warning(key, partner, datetime.now(UTC)):
        log.warning("recipient key expiring", **run._ctx(recipient=partner, fingerprint=key.fingerprint, detail=note))
    private_dir(outbox)
    files: list[dict[str, Any]] = [dict(part) for part in encrypt_all(_jobs(run, key, signer, outbox), report)]
    manifest = build_manifest(run, recipient, files, ledger, signer)
    seal_subjects(run, outbox)  # before the manifest: a sealed outbox always names its subjects
    data = json.dumps(manifest, indent=2).encode("utf-8")
    with writing(outbox, "the delivery manifest"):
        # The signature first: a manifest (the mark of a sealed outbox) always has its signature beside it.
        write_atomic(signature_path(manifest_path), sign_detached(data, signer))
        write_atomic(manifest_path, data)
    log.info("encrypted", **run._ctx(recipient=partner, files=len(files), rows=manifest["rows"],
                                     bytes=sum(f["size"] for f in files)))
    return {"files": len(files), "rows": manifest["rows"], "reused": False}


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


def _jobs(run: FlowRun, key: RecipientKey, signer: SigningKey, outbox: Path) -> list[Job]:
    """The parts, named from the prepared row count, split into one contiguous run per worker."""
    from transfers.steps.encrypt_parts import Job, plan_parts, worker_count

    settings = run.settings
    parts = plan_parts(run.staging.rows("prepared"), settings.delivery_max_rows, run.base_name)
    workers = worker_count(settings.encrypt_workers, len(parts))
    columns = run.staging.columns("prepared")
    return [Job(run_dir=run.staging.run_dir, staging_key=run.staging_key, columns=columns,
                formula_escape=run.ref.flow.csv.formula_escape,
                parts=tuple(parts[len(parts) * i // workers: len(parts) * (i + 1) // workers]), outbox=outbox,
                recipient_key_file=key.path, recipient_fingerprint=key.fingerprint, recipient_armored=key.armored,
                signer_fingerprint=signer.fingerprint, signer_armored=signer.armored,
                signer_passphrase=signer.passphrase, compression=settings.compression,
                level=settings.compression_level)
            for i in range(workers)]
