"""One data subject's trail: every disclosure, exclusion and notice that concerned them (subject access requests).

Shared by ``transfers subject history`` and the subject look-up page of the Airflow UI
(``transfers_airflow.ui``), so both say the same. The identifier is only ever used to compute
each agreement's keyed lookup (``subject_lookups``); it is never returned, logged or recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.connections import SecretLookup
    from transfers.ledger import Ledger
    from transfers.privacy.subjects import SubjectEvent
    from transfers.settings import Settings

__all__ = ["TRAIL_HEADINGS", "TrailRow", "subject_lookups", "subject_trail"]

#: The columns of a trail, in order (the CLI's tab-separated heading, the page's table head).
TRAIL_HEADINGS = (
    "when",
    "what",
    "flow",
    "logical date",
    "recipient",
    "detail",
    "pseudonym (key id)",
    "ledger entry",
    "receipt or confirmation",
)


@dataclass(frozen=True)
class TrailRow:
    """One event of a subject's trail, as plain text cells ("-" where nothing applies)."""

    when: str
    what: str
    flow: str
    logical_date: str
    recipient: str
    detail: str
    pseudonym: str
    ledger_entry: str
    receipt: str

    def cells(self) -> list[str]:
        return [
            self.when,
            self.what,
            self.flow,
            self.logical_date,
            self.recipient,
            self.detail,
            self.pseudonym,
            self.ledger_entry,
            self.receipt,
        ]


def subject_lookups(config: Config, identifier: str, secret: SecretLookup) -> dict[str, str]:
    """agreement id -> the subject's lookup under that agreement's local lookup key."""
    from transfers.privacy.subjects import lookup_key, lookup_of

    lookups: dict[str, str] = {}
    for item in config.agreements:
        setting = item.agreement.pseudonymisation
        if setting is None:
            continue  # no key: this agreement records no subjects
        lookups[item.agreement.id] = lookup_of(identifier, lookup_key(secret(setting.key_secret), item.agreement.id))
    return lookups


def subject_trail(settings: Settings, lookups: dict[str, str]) -> list[TrailRow]:
    """Every event recorded about the subject whose ``lookups`` these are, oldest first; none for a stranger.

    Each disclosure and notice carries its ledger entry and what the recipient's signed receipt
    (or notice confirmation) said of it.
    """
    from transfers.privacy.subjects import SubjectIndex

    index = SubjectIndex.for_settings(settings)
    try:
        events = [e for e in index.events(lookups.values()) if lookups.get(e.agreement)]
    finally:
        index.close()
    seqs: dict[str, int] = {}  # the ledger entry of each disclosure and notice
    receipts: dict[str, str] = {}  # what the recipient's signed receipt (confirmation) said of each disclosure (notice)
    if events:
        with settings.open_ledger() as ledger:
            for e in events:
                wanted = e.event in ("disclosed", "notice") and e.ref and e.ref not in seqs
                if wanted and (entry := ledger.find(e.ref)) is not None:
                    seqs[e.ref] = entry.seq
                if e.event == "disclosed" and e.ref:
                    receipts[e.ref] = _receipt_of(ledger, e)
                if e.event == "notice" and e.ref:
                    receipts[e.ref] = _confirmation_of(ledger, e.ref)
    rows = []
    for e in events:
        counted = e.event in ("disclosed", "notice")
        seq = seqs.get(e.ref or "") if counted else None
        rows.append(
            TrailRow(
                when=f"{e.at:%Y-%m-%d %H:%M}",
                what=e.event,
                flow=e.flow or e.agreement,
                logical_date=e.logical_date.isoformat() if e.logical_date else "-",
                recipient=e.recipient or "-",
                detail=e.detail or "-",
                pseudonym=f"{e.pseudonym} ({e.key_id})" if e.pseudonym else "-",
                ledger_entry=str(seq) if seq else "-",
                receipt=receipts.get(e.ref or "", "-") if counted else "-",
            )
        )
    return rows


def _receipt_of(ledger: Ledger, event: SubjectEvent) -> str:
    """``acknowledged <when> by <key>``, ``rejected: <reason>`` or ``unacknowledged``, for one disclosure."""
    from transfers.ledger.records import Acknowledgement
    from transfers.receipt import delivery_id

    flow_id = (event.flow or "").partition(".")[2] or (event.flow or "")
    ds = event.logical_date.isoformat() if event.logical_date else ""
    ack = ledger.find_record(
        Acknowledgement, Acknowledgement.key_for(delivery_id(event.agreement, flow_id, ds, event.recipient or ""))
    )
    if ack is None:
        return "unacknowledged"
    if ack.status == "rejected":
        return f"rejected: {ack.reason}"
    return f"acknowledged {ack.when:%Y-%m-%d %H:%M} by {(ack.signer_fingerprint or '')[-16:]}"


def _confirmation_of(ledger: Ledger, ref: str) -> str:
    """``confirmed: 2 rows deleted <when>`` or ``unconfirmed``, for one notice (its ledger dedupe key)."""
    from transfers.ledger.records import Notice
    from transfers.notice_confirmations import confirmation_of, describe

    notice = ledger.find_record(Notice, ref)
    return describe(confirmation_of(ledger, notice)) if notice is not None else "-"
