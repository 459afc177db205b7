"""The sender's side of a notice: collect the recipient's signed confirmation, verify it, record it once.

For every withdrawal or correction notice in our ledger (``Notice``) with no confirmation recorded,
the recipient's confirmation (``transfers.confirmation``) is read from ``receipts/`` beside where the
notice went, over the same pinned SFTP connection the notice was sent with. It counts only when its
detached signature verifies against the recipient's pinned signing key (``signing_fingerprint`` in
the Tier 1 register, public key in ``keys/<partner>.asc``) and it names exactly the notice sent:
reference, kind, agreement, flow, sender and recipient. Then it is ``NoticeConfirmed`` (rows
affected, the confirmation's SHA-256, the signer); anything else is ``NoticeConfirmationRefused``
(with the hash, as evidence) and never counts.

``confirmation_statuses`` says, from the ledger alone, where each notice stands: for
``transfers notices confirmations`` and ``transfers subject history``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from transfers.confirmation import Confirmation, confirmation_name
from transfers.errors import ConfigError, ReceiptInvalid, TransferError
from transfers.ledger.records import Notice, NoticeConfirmationRefused, NoticeConfirmed
from transfers.logs import get_logger
from transfers.receipt import RECEIPTS_DIR, SIGNATURE_SUFFIX, sha256_hex
from transfers.returned import partner_signing_key, read_signed

if TYPE_CHECKING:
    from transfers.agreement import Config, Recipient
    from transfers.connections import ConnInfo
    from transfers.crypto import SigningKey
    from transfers.delivery import SftpSession
    from transfers.ledger import Ledger
    from transfers.ledger.records import Record
    from transfers.settings import Settings

__all__ = ["NoticeStatus", "collect_confirmations", "confirmation_of", "confirmation_statuses", "describe",
           "statuses_of"]

log = get_logger(__name__)


@dataclass(frozen=True)
class NoticeStatus:
    """Where one notice sent stands: ``confirmed`` (with the recipient's count), ``refused`` (a confirmation
    that did not verify was found; the reason), or ``unconfirmed``."""

    agreement: str
    flow: str  # <agreement>.<flow>
    recipient: str
    notice: str
    reference: str
    sent_at: datetime
    status: str  # confirmed | refused | unconfirmed
    rows: int = 0
    confirmed_at: datetime | None = None
    signer_fingerprint: str | None = None
    reason: str = ""


def describe(status: NoticeStatus) -> str:
    """``confirmed: 2 rows deleted 2026-11-27 09:00``, ``refused: <why>`` or ``unconfirmed``."""
    if status.status == "confirmed" and status.confirmed_at is not None:
        done = "deleted" if status.notice == "withdrawal" else "marked"
        return f"confirmed: {status.rows} rows {done} {status.confirmed_at:%Y-%m-%d %H:%M}"
    if status.status == "refused":
        return f"unconfirmed (a confirmation was refused: {status.reason})"
    return "unconfirmed"


def confirmation_statuses(ledger: Ledger) -> list[NoticeStatus]:
    """Every notice in the ledger, oldest first, with its confirmation (from the ledger only)."""
    answers = list(ledger.records(NoticeConfirmed, NoticeConfirmationRefused))
    return statuses_of(ledger.records(Notice), answers)


def statuses_of(notices: Iterable[Notice], answers: Iterable[Record]) -> list[NoticeStatus]:
    """``notices`` with their confirmations, from records already read (``confirmation_statuses`` reads them).

    Args:
        answers: Records in seq order holding at least every ``NoticeConfirmed`` and ``NoticeConfirmationRefused``
            of these notices, whenever recorded; records of other kinds are ignored.
    """
    confirmed: dict[str | None, NoticeConfirmed] = {}
    refused: dict[tuple[str, str], NoticeConfirmationRefused] = {}
    for answer in answers:
        if isinstance(answer, NoticeConfirmed):
            confirmed[answer.dedupe_key()] = answer
        elif isinstance(answer, NoticeConfirmationRefused):
            refused[(answer.recipient or "", answer.reference)] = answer
    return [_status(n, confirmed.get(NoticeConfirmed.key_for(n.recipient or "", n.reference)),
                    refused.get((n.recipient or "", n.reference))) for n in notices]


def confirmation_of(ledger: Ledger, notice: Notice) -> NoticeStatus:
    """Where one notice stands (for ``subject history``)."""
    return _status(notice, ledger.find_record(NoticeConfirmed,
                                              NoticeConfirmed.key_for(notice.recipient or "", notice.reference)))


def _status(notice: Notice, found: NoticeConfirmed | None,
            bad: NoticeConfirmationRefused | None = None) -> NoticeStatus:
    status = "confirmed" if found is not None else "refused" if bad is not None else "unconfirmed"
    return NoticeStatus(agreement=notice.agreement, flow=notice.flow or "", recipient=notice.recipient or "",
                        notice=notice.notice, reference=notice.reference, sent_at=notice.when, status=status,
                        rows=found.rows if found else 0, confirmed_at=found.when if found else None,
                        signer_fingerprint=found.signer_fingerprint if found else None,
                        reason=bad.reason if bad and not found else "")


def collect_confirmations(settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo],
                          *, now: datetime | None = None,
                          session: SftpSession | None = None) -> list[NoticeStatus]:
    """Read, verify and record the confirmation of every notice not confirmed yet; then every notice's status.

    A confirmation that does not verify is recorded as refused and the others are still collected; a
    recipient that cannot be reached leaves its notices unconfirmed (logged) until the next call.
    ``session`` is an open SFTP session to the recipient (tests pass a fake one); default: one per
    (flow, recipient), opened with the recipient's connection, host key pinned, as notices are sent.

    Raises:
        TransferError: The first failure to reach a recipient or to load its key, after trying every one.
    """
    confirmed = {r.dedupe_key() for r in ledger.records(NoticeConfirmed)}
    waiting: dict[tuple[str, str], list[Notice]] = {}
    for notice in ledger.records(Notice):
        if NoticeConfirmed.key_for(notice.recipient or "", notice.reference) not in confirmed and notice.file:
            waiting.setdefault((notice.flow or "", notice.recipient or ""), []).append(notice)
    failures: list[TransferError] = []
    for (flow_key, partner), notices in sorted(waiting.items()):
        try:
            _collect_flow(settings, config, ledger, connection, flow_key, partner, notices, now, session)
        except TransferError as exc:
            log.error("notice confirmations not collected", flow=flow_key, recipient=partner, error=str(exc))
            failures.append(exc)
    if failures:
        raise failures[0]
    return confirmation_statuses(ledger)


def _collect_flow(settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo],
                  flow_key: str, partner: str, notices: list[Notice], now: datetime | None,
                  session: SftpSession | None) -> None:
    ref = config.flow(flow_key)
    recipient = next((r for r in ref.flow.to if r.partner == partner), None)
    if recipient is None:
        raise ConfigError(f"flow {flow_key}: {partner!r} is no longer a recipient in the agreement; its notice "
                          f"confirmations cannot be collected over its connection")
    key = partner_signing_key(settings, config, partner, now)
    if session is not None:
        for notice in notices:
            _collect_one(ledger, session, ref.flow.from_, recipient, key, notice)
        return
    from transfers.delivery import SftpTarget, open_sftp

    target = SftpTarget.from_connection(connection(recipient.sftp_connection), recipient, settings=settings)
    with open_sftp(target) as opened:
        for notice in notices:
            _collect_one(ledger, opened, ref.flow.from_, recipient, key, notice)


def _collect_one(ledger: Ledger, session: SftpSession, sender: str, recipient: Recipient, key: SigningKey,
                 notice: Notice) -> None:
    from transfers.crypto import verify_detached

    assert notice.file is not None
    flow_id = (notice.flow or "").partition(".")[2]
    remote_dir = posixpath.dirname(notice.file.remote_path)
    where = posixpath.join(remote_dir, RECEIPTS_DIR) if remote_dir not in ("", ".") else RECEIPTS_DIR
    name = confirmation_name(notice.agreement, flow_id, notice.notice, notice.reference)
    document, signature = read_signed(session, where, name, what="confirmation", error=ReceiptInvalid)
    if document is None:
        return  # not confirmed yet
    path = posixpath.join(where, name)
    digest = sha256_hex(document)
    problem: str | None = None
    if signature is None:
        problem = f"{path}: no detached signature {name}{SIGNATURE_SUFFIX} beside it"
    elif verify_detached(document, signature, key) is None:
        problem = f"{path}: signature does not verify against {recipient.partner}'s pinned signing key {key.fingerprint}"
    else:
        try:
            problem = _mismatch(Confirmation.parse(document, where=path), notice, flow_id, sender, recipient, key)
        except ReceiptInvalid as exc:
            problem = str(exc)
        if problem is not None and not problem.startswith(path):
            problem = f"{path}: {problem}"
    if problem is not None:
        entry, _created = ledger.record(NoticeConfirmationRefused(
            agreement=notice.agreement, flow=notice.flow, recipient=recipient.partner, reference=notice.reference,
            reason=problem, confirmation_sha256=digest))
        log.error("notice confirmation refused", flow=notice.flow, recipient=recipient.partner,
                  reference=notice.reference, ledger_seq=entry.seq)
        return
    confirmation = Confirmation.parse(document, where=path)
    entry, _created = ledger.record(NoticeConfirmed(
        agreement=notice.agreement, flow=notice.flow, recipient=recipient.partner, reference=notice.reference,
        notice=notice.notice, rows=confirmation.rows, confirmation_sha256=digest,
        signer_fingerprint=key.fingerprint, applied_at=confirmation.applied_at,
        recipient_ledger_head=confirmation.recipient_ledger_head))
    log.info("notice confirmed", flow=notice.flow, recipient=recipient.partner, reference=notice.reference,
             rows=confirmation.rows, ledger_seq=entry.seq)


def _mismatch(confirmation: Confirmation, notice: Notice, flow_id: str, sender: str, recipient: Recipient,
              key: SigningKey) -> str | None:
    """What makes ``confirmation`` not the confirmation of the notice we sent, or ``None``."""
    from transfers.returned import mismatch, signer_mismatch

    expected = {"reference": notice.reference, "notice": notice.notice, "agreement": notice.agreement,
                "flow": flow_id, "sender": sender, "recipient": recipient.partner}
    return mismatch(confirmation, expected, "the notice's") or signer_mismatch(
        confirmation.signer_fingerprint, key, recipient.partner)
