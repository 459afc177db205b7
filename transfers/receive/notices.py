"""Act on the withdrawal and correction notices a flow's sender sent us, and confirm each, signed.

``apply_notices`` is what ``transfers notices apply`` calls, at the party the flows are addressed to.
For each flow we receive, every ``<agreement>_<flow>_<kind>-notice_<tag>.json.pgp`` in its inbox
directory (or, with ``TRANSFERS_MAILBOX``, on the remote mailbox, fetched into a private cache) is:

1. decrypted with our key and verified against the flow sender's pinned signing key
   (``decrypt_verified``); its JSON must name us as recipient, the flow's agreement, flow and sender,
   and the kind and reference its file name carries. Anything else is refused: recorded as
   ``NoticeRefused`` (with the file's hash), the file quarantined still encrypted, nothing acted on;
2. applied to our store, once per reference (``transfers.receive.subject_rows``): a withdrawal deletes
   the rows holding one of its pseudonyms in every received table of the agreement (all its flows to
   us, each table's subject column), a correction marks them in ``received_corrections``;
3. confirmed: a signed confirmation (``transfers.confirmation``, signature first) is written into
   ``<path>/receipts/`` (and uploaded to the mailbox), ``NoticeApplied`` is recorded in our ledger, and
   the notice file leaves the inbox.

A rerun does nothing twice: the store keeps each reference's outcome in the same transaction as the
delete, an existing confirmation is reused byte for byte, and the ledger dedupes on the reference.
The pseudonyms stay in memory; nothing personal is logged or written outside the store.
"""

from __future__ import annotations

import contextlib
import json
import posixpath
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfers.confirmation import NOTICE_NAME, Confirmation, confirmation_name
from transfers.errors import ConfigError, DeliveryRejected
from transfers.files import private_dir, write_atomic
from transfers.ledger.records import NoticeApplied, NoticeRefused
from transfers.logs import get_logger
from transfers.receipt import RECEIPTS_DIR, SIGNATURE_SUFFIX, sha256_hex

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.agreement.party import Inbound
    from transfers.connections import ConnLookup
    from transfers.crypto import DecryptionKey, SigningKey
    from transfers.delivery.session import SftpSession
    from transfers.flowrun import Resolvers
    from transfers.ledger import Ledger
    from transfers.receive.subject_rows import SubjectTable
    from transfers.settings import Settings

__all__ = ["NoticeOutcome", "apply_notices"]

log = get_logger(__name__)

#: A notice is a small JSON document; a larger file is not one (and is not read into memory).
MAX_NOTICE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NoticeOutcome:
    """What became of one notice file: ``applied`` now, ``already`` applied before, or ``refused``."""

    flow: str  # <agreement>.<flow>
    name: str
    status: str  # applied | already | refused
    notice: str = ""
    reference: str = ""
    rows: int = 0
    tables: tuple[str, ...] = ()
    reason: str = ""
    ledger_seq: int | None = None


@dataclass
class _Keys:
    own: DecryptionKey
    signer: SigningKey
    sender: SigningKey


@dataclass
class _Place:
    """One inbound flow's inbox directory (a local one, or the mailbox cache) and, with a mailbox, its session."""

    item: Inbound
    me: str
    directory: Path
    session: SftpSession | None = None
    names: list[str] = field(default_factory=list)

    @property
    def sender(self) -> str:
        return self.item.ref.flow.from_

    def returned(self, confirmation: Path) -> None:
        if self.session is not None:
            from transfers.receive.mailbox import return_receipt

            return_receipt(self.session, confirmation)  # the .asc first; idempotent

    def remove(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)
        if self.session is not None:
            from transfers.delivery.remote import remove_remote

            directory = self.session.target.remote_dir
            remove_remote(self.session, name if directory == "." else posixpath.join(directory, name))


def apply_notices(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, *, me: str,
                  flow_key: str | None = None, now: datetime | None = None) -> list[NoticeOutcome]:
    """Apply and confirm every notice waiting for ``me`` in the inbox of each flow it receives (or ``flow_key``).

    Returns one outcome per notice file found, refused ones included (their refusal is recorded).

    Raises:
        ConfigError: ``me`` receives no flow (or not ``flow_key``), or a sender has no pinned signing key.
        SecretMissing, KeyRefused: Our decryption or signing key, or the sender's pinned key, is unusable
            (looked at only when a notice is waiting; nothing was acted on).
        StoreUnavailable, DestructionFailed: The store; that notice was not applied (the next run retries).
        HostKeyMismatch, DeliveryRefused, DeliveryUnavailable: (mailbox) as ``open_sftp``.
    """
    from transfers.agreement import receiving_flows

    inbound = [i for i in receiving_flows(config, me) if flow_key in (None, i.key)]
    if not inbound:
        raise ConfigError(f"{me!r} receives {'no flow' if flow_key is None else f'no flow {flow_key}'} in "
                          f"{config.root}; check TRANSFERS_PARTY")
    at = now or datetime.now(UTC)
    outcomes: list[NoticeOutcome] = []
    for item in inbound:
        with _opened(settings, resolvers, item, me, at) as place:
            if not place.names:
                continue
            keys = _keys(settings, config, resolvers, place)
            for name in place.names:
                outcomes.append(_one(settings, config, ledger, place, keys, name, at, resolvers.connection))
    return outcomes


@contextlib.contextmanager
def _opened(settings: Settings, resolvers: Resolvers, item: Inbound, me: str, at: datetime) -> Iterator[_Place]:
    """The flow's notices, in a local inbox or fetched from the mailbox into a cache removed afterwards."""
    prefix = f"{item.ref.agreement.id}_{item.ref.flow.id}_"

    def ours(name: str) -> bool:
        found = NOTICE_NAME.match(name)
        return found is not None and found["prefix"] + "_" == prefix and "/" not in name and "\\" not in name

    if not settings.mailbox:
        directory = settings.inbox / item.recipient.remote_path
        names = sorted(p.name for p in directory.iterdir()
                       if p.is_file() and not p.is_symlink() and ours(p.name)) if directory.is_dir() else []
        yield _Place(item, me, directory, names=names)
        return
    from transfers.delivery.remote import list_remote
    from transfers.delivery.session import open_sftp
    from transfers.receive.mailbox import _download, target_for

    cache = settings.layout.mailbox_cache(item.ref.agreement.id, item.ref.flow.id, at.date()).with_name("notices")
    target = target_for(settings, resolvers.connection, item.recipient)
    try:
        with open_sftp(target) as session:
            remote = session.target.remote_dir
            names = sorted(f.name for f in list_remote(session, remote) if ours(f.name)
                           and (f.size or 0) <= MAX_NOTICE_BYTES)
            shutil.rmtree(cache, ignore_errors=True)
            private_dir(cache)
            for name in names:
                _download(session, name if remote == "." else posixpath.join(remote, name), cache / name)
            yield _Place(item, me, cache, session, names)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def _keys(settings: Settings, config: Config, resolvers: Resolvers, place: _Place) -> _Keys:
    from transfers.crypto import load_signing_key, own_decryption_key, party_signing_key

    own = own_decryption_key(resolvers.secret, place.me, place.item.recipient.pgp_fingerprint)
    signer = party_signing_key(resolvers.secret, config.protocol, place.me)
    sender = config.protocol.signatory(place.sender)
    if sender is None or not sender.signing_fingerprint:
        raise ConfigError(f"{place.sender}: no signing_fingerprint in protocol.yaml, so no notice it sends can be "
                          f"verified; pin the fingerprint of its signing key")
    return _Keys(own, signer, load_signing_key(settings.keys / f"{place.sender}.asc", sender.signing_fingerprint))


def _one(settings: Settings, config: Config, ledger: Ledger, place: _Place, keys: _Keys, name: str,
         at: datetime, connection: ConnLookup | None = None) -> NoticeOutcome:
    from transfers.crypto import decrypt_verified
    from transfers.receive.store import ReceivedStore
    from transfers.receive.subject_rows import apply_subject_notice

    ref, path = place.item.ref, place.directory / name
    data = path.read_bytes()
    digest = sha256_hex(data)
    matched = NOTICE_NAME.match(name)
    assert matched is not None  # only matching names are listed
    kind, tag = matched["kind"], matched["tag"]
    try:
        if len(data) > MAX_NOTICE_BYTES:
            raise DeliveryRejected(f"{name}: {len(data)} bytes, larger than any notice; not read")
        plain = decrypt_verified(data, keys.own, keys.sender, where=name, party=place.sender)
        notice = _checked(plain, name, kind=kind, tag=tag, place=place)
    except DeliveryRejected as exc:
        return _refuse(settings, ledger, place, name, digest, exc.reason, at, connection)
    recorded = ledger.find_record(NoticeApplied, NoticeApplied.key_for(tag))
    if recorded is not None:
        _confirm_again(place, kind, tag)
        place.remove(name)
        return NoticeOutcome(ref.key, name, "already", kind, tag, recorded.rows, recorded.tables,
                             ledger_seq=recorded.seq)
    with ReceivedStore(settings.store_database) as store:
        done = apply_subject_notice(store, reference=tag, notice=kind, tables=_tables(config, place, store, notice),
                                    pseudonyms=notice["subject"]["pseudonyms"], fields=notice["fields"], at=at)
    confirmation = Confirmation(reference=tag, notice=kind, agreement=ref.agreement.id, flow=ref.flow.id,
                                sender=place.sender, recipient=place.me, rows=done.rows, tables=done.tables,
                                applied_at=done.applied_at.isoformat(timespec="seconds"),
                                recipient_ledger_head=_head(ledger), signer_fingerprint=keys.signer.fingerprint)
    written = _write(place, confirmation, keys.signer)
    place.returned(written)
    entry, _created = ledger.record(NoticeApplied(
        agreement=ref.agreement.id, flow=ref.key, recipient=place.me, reference=tag, notice=kind,
        sender=place.sender, rows=done.rows, tables=done.tables, notice_sha256=digest,
        confirmation_sha256=sha256_hex(written.read_bytes()), applied_at=confirmation.applied_at))
    place.remove(name)
    log.info("notice applied", flow=ref.key, notice=kind, reference=tag, rows=done.rows, ledger_seq=entry.seq)
    return NoticeOutcome(ref.key, name, "applied", kind, tag, done.rows, done.tables, ledger_seq=entry.seq)


def _checked(plain: bytes, name: str, *, kind: str, tag: str, place: _Place) -> dict[str, Any]:
    """The notice's JSON, checked to be this flow's notice to us as its file name says; else DeliveryRejected."""
    ref = place.item.ref
    try:
        notice = json.loads(plain.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DeliveryRejected(f"{name}: not a JSON notice") from None
    if not isinstance(notice, dict):
        raise DeliveryRejected(f"{name}: not a JSON object")
    expected = {"notice": kind, "reference": tag, "recipient": place.me, "agreement": ref.agreement.id,
                "flow": ref.flow.id, "sender": place.sender}
    for key, value in expected.items():
        if notice.get(key) != value:
            raise DeliveryRejected(f"{name}: {key} is not {value!r} (the notice names another "
                                   f"{'party' if key in ('recipient', 'sender') else key})")
    subject = notice.get("subject")
    pseudonyms = subject.get("pseudonyms") if isinstance(subject, dict) else None
    if not isinstance(pseudonyms, list) or not all(isinstance(p, str) and p for p in pseudonyms):
        raise DeliveryRejected(f"{name}: subject.pseudonyms is not a list of pseudonyms")
    fields = notice.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise DeliveryRejected(f"{name}: fields is not a list of field names")
    notice["fields"] = fields
    return notice


def _tables(config: Config, place: _Place, store: Any, notice: dict[str, Any]) -> list[SubjectTable]:
    """Every received table of the notice's agreement, with the column naming the subject in each."""
    from transfers.agreement import receiving_flows
    from transfers.receive.store import table_name
    from transfers.receive.subject_rows import SubjectTable

    agreement = place.item.ref.agreement.id
    columns: dict[str, str] = {}  # flow id -> its subject column, for the flows we receive under the agreement
    for inbound in receiving_flows(config, place.me):
        flow = inbound.ref.flow
        if inbound.ref.agreement.id == agreement and flow.subject in flow.shared_fields:
            columns[flow.id] = flow.subject
    fallback = notice["subject"].get("field")
    found = {d.flow: d.table_name for d in store.deliveries(agreement=agreement)}
    tables = {flow_id: table_name(agreement, flow_id) for flow_id in columns} | found
    return [SubjectTable(table, columns.get(flow_id) or str(fallback)) for flow_id, table in sorted(tables.items())
            if columns.get(flow_id) or isinstance(fallback, str)]


def _head(ledger: Ledger) -> dict[str, Any] | None:
    head = ledger.head()
    return {"seq": head.seq, "hash": head.hash} if head else None


def _confirmation_path(place: _Place, kind: str, tag: str) -> Path:
    ref = place.item.ref
    return place.directory / RECEIPTS_DIR / confirmation_name(ref.agreement.id, ref.flow.id, kind, tag)


def _write(place: _Place, confirmation: Confirmation, signer: SigningKey) -> Path:
    """The confirmation (signature first), unless one is already there: a retry returns what was written."""
    from transfers.crypto import sign_detached

    path = _confirmation_path(place, confirmation.notice, confirmation.reference)
    if not path.is_file():
        # Not private: the sender's SFTP login reads it; it holds no pseudonym and no record value.
        path.parent.mkdir(parents=True, exist_ok=True)
        data = confirmation.to_bytes()
        write_atomic(path.with_name(path.name + SIGNATURE_SUFFIX), sign_detached(data, signer), mode=0o644)
        write_atomic(path, data, mode=0o644)
    return path


def _confirm_again(place: _Place, kind: str, tag: str) -> None:
    """A notice applied before but still there (a crash before it was removed): its confirmation is out."""
    path = _confirmation_path(place, kind, tag)
    if place.session is not None and path.is_file():
        place.returned(path)


def _refuse(settings: Settings, ledger: Ledger, place: _Place, name: str, digest: str, reason: str,
            at: datetime, connection: ConnLookup | None = None) -> NoticeOutcome:
    from transfers.receive.quarantine import quarantine
    from transfers.workstore.quarantine import publish_or_keep

    ref = place.item.ref
    entry, _created = ledger.record(NoticeRefused(agreement=ref.agreement.id, flow=ref.key, recipient=place.me,
                                                  name=name, reason=reason, notice_sha256=digest))
    where = settings.layout.quarantine_dir(ref.agreement.id, ref.flow.id, at.date(), place.sender)
    folder = quarantine([place.directory / name], where, reason=f"notice refused: {reason}",
                        delivery_id=f"{ref.agreement.id}:{ref.flow.id}:notice:{name}", manifest_sha256=None)
    publish_or_keep(settings, folder, connection)  # with an S3 work store, where every worker's purge sees it
    if place.session is not None:
        place.remove(name)
    log.error("notice refused", flow=ref.key, file=name, reason=reason, ledger_seq=entry.seq)
    return NoticeOutcome(ref.key, name, "refused", reason=reason, ledger_seq=entry.seq)
