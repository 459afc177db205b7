"""Receive one delivery of an inbound flow: verify it, load it, and return a signed receipt.

``receive`` is what the receive DAG's task and ``transfers receive`` call for one
(flow, logical date), at the party the flow is addressed to:

1. already received (a ``receipt`` in our ledger for this delivery, and no other manifest in the
   inbox): nothing to do, the result is the recorded one;
2. our keys first (our decryption key, our signing key for the receipt, the sender's pinned
   signing key): a missing or refused key stops before anything is read;
3. ``open_delivery`` waits for a complete, signed manifest (``DeliveryPending`` until then) and
   checks it against the agreement we hold; ``ReceivedStore.load`` streams the parts through the
   signature, column and row checks into our store in one transaction (idempotent);
4. the receipt is written into ``<inbox>/<path>/receipts/`` (signature first) and recorded in our
   ledger, and the delivery's encrypted files leave the inbox (the rows are in the store now).

A delivery that fails any check is moved, still encrypted, to the quarantine with its reason;
nothing of it is loaded; a signed rejection is returned and recorded; ``DeliveryRejected`` then
fails the task so the night shows it. A crash anywhere recovers on the next attempt: the load is
idempotent, an existing receipt file is reused as it is, and the ledger dedupes the record.

With ``TRANSFERS_MAILBOX`` the inbox is a directory on a remote SFTP server
(``transfers.receive.mailbox``): the delivery is fetched into a private local cache, which is the
inbox for everything above; the receipt is uploaded to the mailbox once written, the delivery's
files leave the mailbox once recorded, and the cache is removed when the receive ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from transfers.errors import ConfigError, DeliveryPending, DeliveryRejected, HostKeyMismatch
from transfers.files import sha256_size, write_atomic
from transfers.ledger.records import Received, RemoteFile
from transfers.logs import get_logger
from transfers.receipt import (
    MANIFEST_SUFFIX,
    RECEIPTS_DIR,
    SIGNATURE_SUFFIX,
    Receipt,
    ReceiptFile,
    base_name,
    delivery_id,
    manifest_name,
    receipt_name,
    sha256_hex,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from transfers.agreement import Config, FlowRef, Recipient
    from transfers.connections import ConnInfo
    from transfers.crypto import SigningKey
    from transfers.flowrun import Resolvers
    from transfers.ledger import Ledger
    from transfers.receive.mailbox import Mailbox
    from transfers.receive.mesh_inbox import MeshInbox
    from transfers.settings import Settings

__all__ = ["ReceiveResult", "receive"]

log = get_logger(__name__)


class ReceiveResult(TypedDict):
    status: str  # accepted | rejected
    delivery_id: str
    rows: int
    table: str | None
    receipt_sha256: str | None
    already: bool


@dataclass(frozen=True)
class _Place:
    """Where one delivery of one inbound flow is found and answered."""

    ref: FlowRef
    me: str
    recipient: Recipient
    logical_date: date
    inbox: Path  # with a remote mailbox: the local cache it was fetched into
    mailbox: Mailbox | MeshInbox | None = None  # a remote SFTP mailbox or our MESH inbox

    @property
    def ds(self) -> str:
        return self.logical_date.isoformat()

    @property
    def base(self) -> str:
        return base_name(self.ref.agreement.id, self.ref.flow.id, self.ds)

    @property
    def delivery_id(self) -> str:
        return delivery_id(self.ref.agreement.id, self.ref.flow.id, self.ds, self.me)

    @property
    def sender(self) -> str:
        return self.ref.flow.from_

    @property
    def manifest(self) -> Path:
        return self.inbox / manifest_name(self.base)

    @property
    def receipt(self) -> Path:
        return self.inbox / RECEIPTS_DIR / receipt_name(self.base)

    def delivery_files(self) -> list[Path]:
        """Every file of this delivery in the inbox (parts, manifest, its signature), as the sender named them."""
        if not self.inbox.is_dir():
            return []
        return sorted(p for p in self.inbox.iterdir()
                      if p.is_file() and not p.is_symlink() and p.name.startswith(self.base + "."))


def receive(settings: Settings, config: Config, ref: FlowRef, logical_date: date, resolvers: Resolvers,
            ledger: Ledger, *, me: str, now: datetime | None = None) -> ReceiveResult:
    """Receive ``ref``'s delivery for ``logical_date`` at party ``me``.

    Raises:
        ConfigError: ``me`` is not a recipient of the flow.
        DeliveryPending: No complete, signed manifest in the inbox yet (retriable: look again later).
        DeliveryRejected: The delivery failed a check: quarantined, a signed rejection returned and recorded.
        SecretMissing, KeyRefused: Our decryption or signing key, or the sender's pinned key, is unusable.
        HostKeyMismatch, DeliveryRefused, DeliveryUnavailable: (mailbox) as ``open_sftp``; nothing is read
            from a server whose host key is not the pinned one.
    """
    recipient = _recipient(ref, me)
    if recipient.mesh is not None:  # our own NHS MESH inbox, whatever the deployment's inbox or mailbox
        from transfers.receive.mesh_inbox import MeshInbox

        inbox = MeshInbox.for_flow(settings, resolvers.connection, recipient, ref, logical_date)
        with inbox.fetched() as pending:
            place = _Place(ref, me, recipient, logical_date, inbox.cache, inbox)
            return _receive(settings, config, place, resolvers, ledger, now, pending)
    if not settings.mailbox:
        place = _Place(ref, me, recipient, logical_date, settings.inbox / recipient.remote_path)
        return _receive(settings, config, place, resolvers, ledger, now)
    from transfers.receive.mailbox import Mailbox

    box = Mailbox.for_flow(settings, resolvers.connection, recipient, ref, logical_date)
    try:
        with box.fetched() as pending:
            place = _Place(ref, me, recipient, logical_date, box.cache, box)
            return _receive(settings, config, place, resolvers, ledger, now, pending)
    except HostKeyMismatch as exc:
        from transfers.incidents import record_incident
        from transfers.ledger.records.incidents import HOST_KEY_MISMATCH

        record_incident(ledger, ref.agreement, what=HOST_KEY_MISMATCH, party=me, flow=ref.key,
                        logical_date=logical_date, partner=ref.flow.from_, where=exc.address, evidence=exc.offered,
                        detail=str(exc), settings=settings)
        raise


def _receive(settings: Settings, config: Config, place: _Place, resolvers: Resolvers, ledger: Ledger,
             now: datetime | None, pending: DeliveryPending | None = None) -> ReceiveResult:
    ref, me, logical_date = place.ref, place.me, place.logical_date
    done = _already(place, ledger)
    if done is not None:
        return done
    from transfers.agreement.signoff import agreement_sha256, require_signoff
    from transfers.crypto import load_signing_key, own_decryption_key, party_signing_key
    from transfers.receive.store import ReceivedStore
    from transfers.receive.verify import open_delivery

    # Keys before anything is read: a night without them stops with the fix in the message.
    require_signoff(ref.path, ref.agreement, config.protocol, settings.keys)
    own_key = own_decryption_key(resolvers.secret, me, place.recipient.pgp_fingerprint)
    signer = party_signing_key(resolvers.secret, config.protocol, me)
    sender = config.protocol.signatory(place.sender)
    if sender is None or not sender.signing_fingerprint:
        raise ConfigError(f"{place.sender}: no signing_fingerprint in protocol.yaml, so nothing it sends can be "
                          f"verified; pin the fingerprint of its signing key")
    sender_key = load_signing_key(settings.keys / f"{place.sender}.asc", sender.signing_fingerprint)
    if pending is not None:
        raise pending  # nothing on the mailbox yet, said of the mailbox rather than of our empty cache

    received_at = now or datetime.now(UTC)
    opened: date | None = None  # the signed manifest's destroy-by, once its signature and content are checked
    try:
        delivery = open_delivery(place.inbox, place.base, ref=ref, me=me, logical_date=logical_date,
                                 own_key=own_key, sender_key=sender_key,
                                 agreement_sha256=agreement_sha256(ref.path))
        opened = delivery.destroy_by
        with ReceivedStore(settings.store_database) as store:
            loaded = store.load(delivery_id=place.delivery_id, manifest_sha256=delivery.manifest_sha256,
                                agreement=ref.agreement.id, agreement_version=ref.agreement.version,
                                flow=ref.flow.id, logical_date=logical_date, sender=place.sender,
                                received_at=received_at, destroy_by=delivery.destroy_by,
                                fields=list(delivery.fields), parts=delivery.parts())
    except DeliveryRejected as exc:
        # Hashed before quarantine moves the manifest away: the incident names the manifest that came.
        manifest_sha = sha256_hex(place.manifest.read_bytes()) if place.manifest.is_file() else None
        _reject(settings, place, ledger, signer, exc.reason, received_at, destroy_by=opened,
                connection=resolvers.connection)
        if exc.kind == "signature":
            _signature_incident(settings, place, ledger, exc, manifest_sha)
        raise
    receipt = _receipt(place, ledger, signer, status="accepted", reason="", received_at=received_at,
                       manifest_sha256=delivery.manifest_sha256, rows=delivery.rows,
                       files=[ReceiptFile(f.name, f.size, f.sha256) for f in delivery.files],
                       destroy_by=delivery.destroy_by.isoformat())
    digest = _write_receipt(place, receipt, signer)
    ledger.record(Received(agreement=ref.agreement.id, flow=ref.key, logical_date=logical_date, recipient=me,
                           delivery_id=place.delivery_id, sender=place.sender, status="accepted",
                           manifest_sha256=delivery.manifest_sha256, rows=delivery.rows,
                           files=tuple(RemoteFile(f.name, f.size, f.sha256) for f in delivery.files),
                           receipt_sha256=digest, received_at=receipt.received_at,
                           destroy_by=receipt.destroy_by))
    _collect(place)
    log.info("delivery received", flow=ref.key, logical_date=place.ds, sender=place.sender,
             rows=delivery.rows, table=loaded.table, already_loaded=loaded.already_loaded)
    return {"status": "accepted", "delivery_id": place.delivery_id, "rows": delivery.rows, "table": loaded.table,
            "receipt_sha256": digest, "already": loaded.already_loaded}


def _recipient(ref: FlowRef, me: str) -> Recipient:
    for recipient in ref.flow.to:
        if recipient.partner == me:
            return recipient
    raise ConfigError(f"flow {ref.key} is not sent to {me!r} (it goes to "
                      f"{', '.join(r.partner for r in ref.flow.to)}); check TRANSFERS_PARTY")


def _already(place: _Place, ledger: Ledger) -> ReceiveResult | None:
    """The recorded outcome, unless a manifest other than the recorded one has arrived since (a resend)."""
    recorded = [r for r in ledger.records(Received, agreement=place.ref.agreement.id, flow=place.ref.key)
                if r.delivery_id == place.delivery_id]
    if not recorded:
        return None
    last = recorded[-1]
    if place.manifest.is_file() and sha256_hex(place.manifest.read_bytes()) != last.manifest_sha256:
        return None  # a new manifest under this delivery's name: look at it
    if last.status == "rejected":
        if place.mailbox is not None:
            place.mailbox.collect()  # a crash after recording may have left them there; quarantine holds a copy
        raise DeliveryRejected(f"already rejected: {last.reason}")
    _collect(place)  # a crash after recording may have left the files in the inbox
    return {"status": last.status, "delivery_id": last.delivery_id, "rows": last.rows, "table": None,
            "receipt_sha256": last.receipt_sha256, "already": True}


def _reject(settings: Settings, place: _Place, ledger: Ledger, signer: SigningKey, reason: str,
            received_at: datetime, *, destroy_by: date | None = None,
            connection: Callable[[str], ConnInfo] | None = None) -> None:
    """Quarantine what arrived (still encrypted), return a signed rejection, record it.

    ``destroy_by`` is the controller's date from a manifest whose signature verified (the rejection
    came later, from a part or the store): the quarantined copy goes then. Without it (the manifest
    itself failed) the quarantine's own period applies. With an S3 work store the quarantined copy is
    published there, once all is recorded (``connection`` resolves the store's).
    """
    from transfers.receive.quarantine import quarantine

    manifest_sha = sha256_hex(place.manifest.read_bytes()) if place.manifest.is_file() else None
    held = place.delivery_files()
    files = []
    for path in held:
        size, file_sha = sha256_size(path)
        files.append(ReceiptFile(path.name, size, file_sha))
    where = settings.layout.quarantine_dir(place.ref.agreement.id, place.ref.flow.id, place.logical_date,
                                           place.sender)
    folder = None
    if held:
        folder = quarantine(held, where, reason=reason, delivery_id=place.delivery_id,
                            manifest_sha256=manifest_sha, destroy_by=destroy_by)
    receipt = _receipt(place, ledger, signer, status="rejected", reason=reason, received_at=received_at,
                       manifest_sha256=manifest_sha, rows=0, files=files, destroy_by=None)
    digest: str | None = None
    if _accepted_receipt_held(place):
        # A resend of a delivery we already accepted: the sender keeps the acceptance it has; the
        # refusal of the second copy is in our ledger and the quarantine.
        log.warning("second copy of an accepted delivery rejected", flow=place.ref.key, logical_date=place.ds)
    else:
        digest = _write_receipt(place, receipt, signer, replace=True)
    ledger.record(Received(agreement=place.ref.agreement.id, flow=place.ref.key, logical_date=place.logical_date,
                           recipient=place.me, delivery_id=place.delivery_id, sender=place.sender,
                           status="rejected", reason=reason, manifest_sha256=manifest_sha,
                           files=tuple(RemoteFile(f.name, f.size, f.sha256) for f in files),
                           receipt_sha256=digest, received_at=receipt.received_at))
    if place.mailbox is not None:
        place.mailbox.collect()  # only once recorded: a retry before this fetches it again and records it
    log.warning("delivery rejected", flow=place.ref.key, logical_date=place.ds, sender=place.sender,
                reason=reason, quarantine=str(where))
    if folder is not None:
        from transfers.workstore.quarantine import publish_or_keep

        publish_or_keep(settings, folder, connection)


def _receipt(place: _Place, ledger: Ledger, signer: SigningKey, *, status: str, reason: str,
             received_at: datetime, manifest_sha256: str | None, rows: int, files: list[ReceiptFile],
             destroy_by: str | None) -> Receipt:
    from transfers.agreement.signoff import agreement_sha256

    head = ledger.head()
    agreement = place.ref.agreement
    return Receipt(delivery_id=place.delivery_id,
                   agreement={"id": agreement.id, "version": agreement.version,
                              "sha256": agreement_sha256(place.ref.path)},
                   flow=place.ref.flow.id, logical_date=place.ds, sender=place.sender, recipient=place.me,
                   manifest_sha256=manifest_sha256, files=tuple(files), rows=rows,
                   status="accepted" if status == "accepted" else "rejected", reason=reason,
                   received_at=received_at.isoformat(timespec="seconds"), destroy_by=destroy_by,
                   recipient_ledger_head={"seq": head.seq, "hash": head.hash} if head else None,
                   signer_fingerprint=signer.fingerprint)


def _accepted_receipt_held(place: _Place) -> bool:
    if not place.receipt.is_file():
        return False
    try:
        return Receipt.parse(place.receipt.read_bytes(), where=str(place.receipt)).accepted
    except Exception:  # an unreadable receipt of ours is no acceptance: it is replaced
        return False


def _write_receipt(place: _Place, receipt: Receipt, signer: SigningKey, *, replace: bool = False) -> str:
    """Write the receipt (signature first, so a receipt always has one) and return the SHA-256 of its bytes.

    An existing complete receipt is kept as it is (a retry after a crash returns what was already
    sent, byte for byte), unless ``replace``.
    """
    from transfers.crypto import sign_detached

    path = place.receipt
    if replace or not path.is_file():
        # Not private: the sender's SFTP login (often another OS user) reads receipts, which hold no record values.
        path.parent.mkdir(parents=True, exist_ok=True)
        data = receipt.to_bytes()
        write_atomic(path.with_name(path.name + SIGNATURE_SUFFIX), sign_detached(data, signer), mode=0o644)
        write_atomic(path, data, mode=0o644)  # the sender's SFTP login reads it
    if place.mailbox is not None:
        place.mailbox.return_receipt(path)  # idempotent: a retry re-uploads the same bytes
    return sha256_hex(path.read_bytes())


def _collect(place: _Place) -> None:
    """Take the delivery's encrypted files out of the inbox (and off the mailbox): the rows are in the store,
    the receipt is out."""
    for path in place.delivery_files():
        if path.name.endswith((MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIGNATURE_SUFFIX, ".pgp")):
            path.unlink(missing_ok=True)
    if place.mailbox is not None:
        place.mailbox.collect()


def _signature_incident(settings: Settings, place: _Place, ledger: Ledger, exc: DeliveryRejected,
                        manifest_sha: str | None) -> None:
    """A delivery's manifest or part signature failed here: a security incident seen by this recipient."""
    from transfers.incidents import record_incident
    from transfers.ledger.records.incidents import SIGNATURE_FAILED

    where = exc.reason.split(":", 1)[0]  # our reasons start with the file's name
    record_incident(ledger, place.ref.agreement, what=SIGNATURE_FAILED, party=place.me, flow=place.ref.key,
                    logical_date=place.logical_date, partner=place.sender, where=where,
                    evidence=f"manifest sha256 {manifest_sha}" if manifest_sha else where, detail=exc.reason,
                    settings=settings)
