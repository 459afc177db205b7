"""The sender's side of a receipt: collect the recipient's signed receipt, verify it, record it once.

The recipient writes ``<remote_dir>/receipts/<base>.receipt.json.asc``, then
``<base>.receipt.json`` beside it (see :mod:`transfers.receipt`), into the inbox
directory the delivery went to; the sender reads both over the SFTP connection it
delivered with (the same pinned host key). A receipt counts only when its detached
signature verifies against the recipient's pinned signing key (``signing_fingerprint``
in the Tier 1 register, public key in ``keys/<partner>.asc``) and it names exactly
the delivery that was sent: delivery id, agreement, flow, date, parties, the SHA-256
of our signed manifest and of every data file. Anything else is recorded as
``ReceiptRefused`` (with the receipt's hash, as evidence) and never counts.

Where each disclosure's receipt stands (for `transfers receipts`, the IG report) is read by
:func:`transfers.reports.receipts.receipt_statuses`.
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypedDict

from transfers.errors import (
    HostKeyMismatch,
    ReceiptInvalid,
    ReceiptOverdue,
    ReceiptPending,
    ReceiptRejected,
    StateError,
)
from transfers.ledger.records import Acknowledgement, Disclosure, ReceiptRefused
from transfers.logs import get_logger
from transfers.receipt import (
    MANIFEST_SUFFIX,
    SIGNATURE_SUFFIX,
    Receipt,
    delivery_id,
    receipt_name,
    sha256_hex,
)
from transfers.returned import partner_signing_key, read_signed, returns_dir, returns_session

if TYPE_CHECKING:
    from transfers.agreement import FlowRef, Recipient
    from transfers.crypto import SigningKey
    from transfers.delivery import SftpSession
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

__all__ = ["AckResult", "collect_receipt", "deadline", "describe_left"]

log = get_logger(__name__)

class AckResult(TypedDict):
    status: str  # acknowledged | rejected
    delivery_id: str
    receipt_sha256: str | None
    rows: int


def deadline(ref: FlowRef, disclosed_at: datetime) -> datetime:
    """When the receipt for a disclosure recorded at ``disclosed_at`` is overdue (``receipt_within`` later)."""
    return ref.flow.receipt_within.after(disclosed_at)


def collect_receipt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient, *,
                    now: datetime | None = None, session: SftpSession | None = None) -> AckResult:
    """Read, verify and record ``recipient``'s signed receipt for this (flow, date)'s delivery.

    Idempotent: an acknowledgement already recorded is returned without connecting. ``session``
    is an open SFTP session to the recipient (tests pass a fake one); default: one is opened with
    the recipient's connection from ``resolvers``, host key pinned, as deliver does.

    Raises:
        StateError: Nothing was delivered to ``recipient`` for this (flow, date) yet.
        ReceiptPending: No receipt yet (or only its signature), still within ``receipt_within``;
            the message says how long is left.
        ReceiptOverdue: No receipt, and ``receipt_within`` after the disclosure has passed.
        ReceiptInvalid: A receipt is there but does not count (unsigned, signed by another key,
            unreadable, another delivery's hashes); recorded as ``ReceiptRefused`` first.
        ReceiptRejected: The recipient's verified receipt rejects the delivery (its reason is in
            the message); recorded as an ``rejected`` acknowledgement first.
        KeyRefused: The recipient's pinned signing key is missing or fails a key check.
        DeliveryUnavailable, DeliveryRefused, HostKeyMismatch: The SFTP server, as for deliver.
    """
    partner, agreement = recipient.partner, run.ref.agreement
    did = delivery_id(agreement.id, run.ref.flow.id, run.ds, partner)
    disclosure = ledger.find_record(Disclosure, run.disclosure_key(recipient))
    if disclosure is None:
        raise StateError(f"{run.ref.key} {run.ds}: nothing delivered to {partner} yet; run the deliver step first")
    recorded = ledger.find_record(Acknowledgement, Acknowledgement.key_for(did))
    if recorded is not None:
        return _answer(recorded, partner)
    name = receipt_name(run.base_name)
    mesh_ids: list[str] = []
    try:
        if recipient.mesh is not None:  # sent back to our own MESH inbox (transfers.receive.mesh_inbox)
            from transfers.delivery.mesh import MeshAccount, read_returned

            where = f"mesh:{recipient.mesh.mailbox}"
            account = MeshAccount.from_connection(resolvers.connection(recipient.mesh.connection))
            document, signature, mesh_ids = read_returned(account, recipient.mesh, name)
        else:
            where = returns_dir(disclosure, recipient)
            with returns_session(run.settings, resolvers.connection, recipient, session) as opened:
                document, signature = read_signed(opened, where, name, what="receipt", error=ReceiptInvalid)
    except HostKeyMismatch as exc:
        from transfers.steps.deliver import host_key_incident

        host_key_incident(run, ledger, partner, exc, exc.address)
        raise
    if document is None:
        _not_yet(run, disclosure, partner, name, now)
    path = posixpath.join(where, name)
    receipt_sha = sha256_hex(document)
    context = _Context(run, ledger, recipient, did, disclosure, path, receipt_sha)
    if signature is None:
        # The recipient writes the signature first: a receipt without one was not written by it.
        context.refuse(f"{path}: no detached signature {name}{SIGNATURE_SUFFIX} beside it", signature=True)
    key = _recipient_signing_key(run, partner, now)
    if _verify(document, signature, key) is None:
        context.refuse(f"{path}: signature does not verify against {partner}'s pinned signing key {key.fingerprint}",
                       signature=True)
    try:
        receipt = Receipt.parse(document, where=path)
    except ReceiptInvalid as exc:
        context.refuse(str(exc))
    if problem := _mismatch(run, recipient, disclosure, receipt, did, key):
        context.refuse(f"{path}: {problem}")
    entry, _created = ledger.record(Acknowledgement(
        agreement=agreement.id, flow=run.ref.key, logical_date=run.logical_date, recipient=partner, delivery_id=did,
        status="acknowledged" if receipt.accepted else "rejected",
        reason="" if receipt.accepted else _rejection_reason(run, recipient, disclosure, receipt),
        manifest_sha256=receipt.manifest_sha256, rows=receipt.rows, receipt_sha256=receipt_sha,
        signer_fingerprint=key.fingerprint, received_at=receipt.received_at,
        recipient_ledger_head=receipt.recipient_ledger_head))
    if mesh_ids:  # only once recorded: a retry before this reads the same messages again
        from transfers.delivery.mesh import acknowledge

        acknowledge(account, mesh_ids)
    log.info("receipt verified", **run._ctx(recipient=partner, status=receipt.status, ledger_seq=entry.seq))
    return _answer(Acknowledgement.from_entry(entry), partner)


def _answer(ack: Acknowledgement, partner: str) -> AckResult:
    if ack.status == "rejected":
        # Every look at a rejected delivery fails again: a rerun must not turn the night green.
        raise ReceiptRejected(f"{partner} rejected delivery {ack.delivery_id}: {ack.reason or 'no reason given'} "
                              f"(signed receipt sha256 {ack.receipt_sha256}, ledger entry {ack.seq})")
    return {"status": ack.status, "delivery_id": ack.delivery_id, "receipt_sha256": ack.receipt_sha256,
            "rows": ack.rows}


def _not_yet(run: FlowRun, disclosure: Disclosure, partner: str, name: str, now: datetime | None) -> NoReturn:
    now = now or datetime.now(UTC)
    due = deadline(run.ref, disclosure.when)
    within = run.ref.flow.receipt_within
    if now > due:
        raise ReceiptOverdue(f"{run.ref.key} {run.ds}: no receipt {name} from {partner} within {within} of the "
                             f"delivery at {disclosure.when.isoformat(timespec='seconds')} (due by "
                             f"{due.isoformat(timespec='seconds')}); ask {partner} whether it was received")
    raise ReceiptPending(f"{run.ref.key} {run.ds}: no receipt {name} from {partner} yet; {describe_left(due - now)} "
                         f"left of {within} (due by {due.isoformat(timespec='seconds')})")


def describe_left(left: timedelta) -> str:
    """``1d 3h``, ``3h 12m``, ``4m``: how long is left, to the minute."""
    minutes = max(0, int(left.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins}m" if hours else f"{mins}m"


def _recipient_signing_key(run: FlowRun, partner: str, now: datetime | None) -> SigningKey:
    return partner_signing_key(run.settings, run.config, partner, now)


def _verify(document: bytes, signature: bytes, key: SigningKey) -> datetime | None:
    from transfers.crypto import verify_detached

    return verify_detached(document, signature, key)


def _mismatch(run: FlowRun, recipient: Recipient, disclosure: Disclosure, receipt: Receipt, did: str,
              key: SigningKey) -> str | None:
    """What makes ``receipt`` not a receipt for the delivery we made, or ``None``.

    A rejection must name our delivery (id, flow, date, parties, agreement id); it may carry another
    manifest hash, other file hashes or another agreement version than we sent, as those can be why it
    was rejected (a file replaced on the way is exactly that): it still says our delivery did not
    arrive as sent, and ``_rejection_reason`` notes the difference. An acceptance must match everything
    we sent.
    """
    from transfers.returned import mismatch, signer_mismatch

    agreement, flow = run.ref.agreement, run.ref.flow
    expected = {"delivery_id": did, "flow": flow.id, "logical_date": run.ds, "sender": flow.from_,
                "recipient": recipient.partner}
    if problem := mismatch(receipt, expected, "the delivery's"):
        return problem
    if receipt.agreement.get("id") != agreement.id:
        return f"agreement.id is {receipt.agreement.get('id')!r}, the delivery's is {agreement.id!r}"
    if problem := signer_mismatch(receipt.signer_fingerprint, key, recipient.partner):
        return problem
    if not receipt.accepted:
        return None
    manifest_sha, sent = _sent(run, recipient, disclosure)
    if receipt.manifest_sha256 != manifest_sha:
        return f"manifest_sha256 {receipt.manifest_sha256} is not the SHA-256 of the manifest sent ({manifest_sha})"
    sent_agreement = _sent_agreement(run, recipient)
    for key_name in ("version", "sha256"):
        if str(receipt.agreement.get(key_name)) != str(sent_agreement[key_name]):
            return (f"agreement.{key_name} is {receipt.agreement.get(key_name)!r}, the delivery's is "
                    f"{sent_agreement[key_name]!r}")
    got = {(posixpath.basename(f.name), f.sha256) for f in receipt.files}
    missing = sorted(name for name, sha in sent if (name, sha) not in got)
    extra = sorted(name for name, sha in got if (name, sha) not in sent and not _envelope(name))
    if missing or extra:
        return (f"files differ from those sent: {', '.join(missing) or 'none'} missing or with another SHA-256, "
                f"{', '.join(extra) or 'none'} not sent")
    if receipt.rows != disclosure.rows:
        return f"rows {receipt.rows} loaded, {disclosure.rows} sent"
    return None


def _rejection_reason(run: FlowRun, recipient: Recipient, disclosure: Disclosure, receipt: Receipt) -> str:
    """The recipient's reason, and whether what it judged is what we sent (a changed manifest was not ours)."""
    reason = receipt.reason or "no reason given"
    manifest_sha, _sent_files = _sent(run, recipient, disclosure)
    if receipt.manifest_sha256 is not None and manifest_sha is not None and receipt.manifest_sha256 != manifest_sha:
        reason += (f" (the manifest {recipient.partner} received, sha256 {receipt.manifest_sha256[:16]}, is not the "
                   f"one sent, {manifest_sha[:16]}: it was changed or replaced after it left)")
    return reason


def _envelope(name: str) -> bool:
    """The manifest and its signature: a receipt may list them, but they are checked through manifest_sha256."""
    return name.endswith((MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIGNATURE_SUFFIX))


def _sent(run: FlowRun, recipient: Recipient, disclosure: Disclosure) -> tuple[str | None, set[tuple[str, str]]]:
    """Our manifest's SHA-256 and the data files (name, SHA-256) the disclosure recorded as sent.

    The sealed outbox's manifest when it is still there (retention may have purged it); else the
    hash the disclosure recorded for the manifest file when it was uploaded and read back.
    """
    manifest = run.outbox_dir(recipient) / f"{run.base_name}{MANIFEST_SUFFIX}"
    recorded = {posixpath.basename(f.remote_path): f.sha256 for f in disclosure.files}
    manifest_sha = (hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.exists()
                    else recorded.get(manifest.name))
    files = {(name, sha) for name, sha in recorded.items() if sha and not _envelope(name)}
    return manifest_sha, files


def _sent_agreement(run: FlowRun, recipient: Recipient) -> dict[str, Any]:
    """The agreement block of the manifest we sent (the file's hash as it was), else the agreement as held now."""
    import json

    from transfers.agreement.signoff import agreement_sha256

    manifest = run.outbox_dir(recipient) / f"{run.base_name}{MANIFEST_SUFFIX}"
    if manifest.exists():
        return dict(json.loads(manifest.read_bytes())["agreement"])
    return {"id": run.ref.agreement.id, "version": run.ref.agreement.version, "sha256": agreement_sha256(run.ref.path)}


@dataclass
class _Context:
    """What a refusal is recorded with."""

    run: FlowRun
    ledger: Ledger
    recipient: Recipient
    did: str
    disclosure: Disclosure
    path: str
    receipt_sha256: str

    def refuse(self, reason: str, *, signature: bool = False) -> NoReturn:
        """Record the refusal and raise; ``signature``: a missing or failed signature, also a security incident."""
        run = self.run
        entry, _created = self.ledger.record(ReceiptRefused(
            agreement=run.ref.agreement.id, flow=run.ref.key, logical_date=run.logical_date,
            recipient=self.recipient.partner, delivery_id=self.did, reason=reason, receipt_sha256=self.receipt_sha256))
        log.error("receipt refused", **run._ctx(recipient=self.recipient.partner, ledger_seq=entry.seq))
        if signature:
            from transfers.incidents import record_incident
            from transfers.ledger.records.incidents import SIGNATURE_FAILED

            record_incident(self.ledger, run.ref.agreement, what=SIGNATURE_FAILED, party=run.ref.flow.from_,
                            flow=run.ref.key, logical_date=run.logical_date, partner=self.recipient.partner,
                            where=self.path, evidence=f"receipt sha256 {self.receipt_sha256}", detail=reason,
                            settings=run.settings)
        raise ReceiptInvalid(f"{reason}; not counted as a receipt (recorded as receipt-refused, ledger entry "
                             f"{entry.seq}, receipt sha256 {self.receipt_sha256})")
