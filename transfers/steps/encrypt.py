"""Seal one recipient's outbox: the prepared rows as CSV parts encrypted to its pinned key, then the manifest.

Re-running is safe: an outbox with a manifest is sealed and reused as it is (a fresh
encryption would be a different file under a name the recipient may already hold).
A key refused by the checks is recorded in the ledger before it stops the run. Only
one part's plaintext is in memory at a time.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypedDict

from transfers.files import private_dir, write_atomic
from transfers.ledger.records import RecipientKeyRefused
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.crypto import RecipientKey
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class EncryptResult(TypedDict):
    files: int
    rows: int
    reused: bool


def encrypt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> EncryptResult:
    """Encrypt the prepared rows to the recipient's pinned key, into its outbox."""
    from transfers.crypto import encrypt_to_file
    from transfers.diskspace import writing
    from transfers.privacy.step import seal_subjects

    partner = recipient.partner
    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if manifest_path.exists():
        # A previous attempt sealed this outbox: sending a fresh encryption would put a
        # different file under a name the recipient may already hold.
        manifest = json.loads(manifest_path.read_text())
        log.info("outbox reused", **run._ctx(recipient=partner, files=len(manifest["files"])))
        return {"files": len(manifest["files"]), "rows": manifest["rows"], "reused": True}

    key = _recipient_key(run, recipient, ledger)
    private_dir(outbox)
    files = []
    for name, (plaintext, rows) in _delivery_parts_named(run):
        encrypted = encrypt_to_file(plaintext, key, outbox / name, filename=name.removesuffix(".pgp"))
        files.append({"name": name, "size": encrypted.size, "sha256": encrypted.sha256, "rows": rows})
        del plaintext
    head = ledger.head()
    manifest = {
        "agreement": run.ref.agreement.id,
        "flow": run.ref.flow.id,
        "logical_date": run.ds,
        "sender": run.ref.flow.from_,
        "recipient": partner,
        "recipient_fingerprint": recipient.pgp_fingerprint,
        "fields": run.ref.flow.shared_fields,
        # The recipient needs to know whether a leading ' was added, to load values exactly (csv_escape).
        "formula_escape": run.ref.flow.csv.formula_escape,
        "rows": sum(f["rows"] for f in files),
        "files": files,
        # The ledger's head travels with every delivery, so a ledger cut short
        # after this point can be shown against a copy held by the recipient.
        "ledger_head": {"seq": head.seq, "hash": head.hash} if head else None,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    seal_subjects(run, outbox)  # before the manifest: a sealed outbox always names its subjects
    with writing(outbox, "the delivery manifest"):
        write_atomic(manifest_path, json.dumps(manifest, indent=2))
    log.info("encrypted", **run._ctx(recipient=partner, files=len(files), rows=manifest["rows"]))
    return {"files": len(files), "rows": manifest["rows"], "reused": False}


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
        raise


def _delivery_parts(run: FlowRun) -> Iterator[tuple[bytes, int]]:
    """The prepared rows as CSV files of at most ``delivery_max_rows`` rows each."""
    import pandas as pd

    limit = run.settings.delivery_max_rows
    columns = run.staging.columns("prepared")
    buffer: list[pd.DataFrame] = []
    count = 0
    yielded = False

    def flush() -> tuple[bytes, int]:
        frame = pd.concat(buffer) if buffer else pd.DataFrame(columns=columns)
        if run.ref.flow.csv.formula_escape:
            from transfers.csv_escape import escape_frame

            frame = escape_frame(frame)
        out = io.StringIO()
        frame.to_csv(out, index=False, columns=columns)
        return out.getvalue().encode("utf-8"), len(frame)

    for batch in run.staging.read_batches("prepared"):
        start = 0
        while start < len(batch):
            take = batch.iloc[start : start + (limit - count)]
            buffer.append(take)
            count += len(take)
            start += len(take)
            if count >= limit:
                yield flush()
                buffer, count, yielded = [], 0, True
    if buffer or not yielded:
        yield flush()


def _delivery_parts_named(run: FlowRun) -> Iterator[tuple[str, tuple[bytes, int]]]:
    """Name parts from the row count known up front, so only one part is in memory."""
    rows = run.staging.rows("prepared")
    total = max(1, -(-rows // run.settings.delivery_max_rows))
    for i, part in enumerate(_delivery_parts(run), start=1):
        name = f"{run.base_name}.csv.pgp" if total == 1 else f"{run.base_name}_part{i:03d}of{total:03d}.csv.pgp"
        yield name, part
