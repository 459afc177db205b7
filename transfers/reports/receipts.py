"""Where each disclosure stands with its recipient: acknowledged, rejected, pending or overdue.

One reading of the sender's ledger shared by the IG report, ``transfers subject history`` and
``transfers receipts``: for each ``Disclosure``, the ``Acknowledgement`` recorded for the same
delivery (only receipts whose signature verified against the recipient's pinned key are ever
recorded as one), and the count of ``ReceiptRefused`` (receipts that did not verify: shown, never
counted). A disclosure with no acknowledgement is *pending* until its flow's ``receipt_within``
has passed since it was delivered, then *overdue*.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from transfers.ledger.records import Acknowledgement, Disclosure, ReceiptRefused
from transfers.receipt import delivery_id

if TYPE_CHECKING:
    from collections.abc import Iterable

    from transfers.agreement import Config
    from transfers.ledger import Ledger
    from transfers.ledger.records import Record

__all__ = ["DisclosureReceipt", "receipt_statuses", "receipts_of"]


@dataclass(frozen=True)
class DisclosureReceipt:
    """One disclosure and what its recipient said about it."""

    agreement: str
    flow: str  # <agreement>.<flow>, as the ledger's flow column holds it
    logical_date: str
    recipient: str
    delivered_at: datetime
    rows: int
    delivery_id: str
    status: str  # acknowledged | rejected | pending | overdue
    acknowledged_at: datetime | None = None
    signer_fingerprint: str | None = None
    receipt_sha256: str | None = None
    reason: str = ""
    refused_receipts: int = 0
    due_by: datetime | None = None  # delivered + receipt_within, for pending and overdue
    disclosure_seq: int | None = None
    acknowledgement_seq: int | None = None

    @property
    def unacknowledged(self) -> bool:
        return self.status in ("pending", "overdue")

    def detail(self, now: datetime | None = None) -> str:
        """The rejection's reason, the rows loaded, the time left, or when it was due."""
        if self.status == "rejected":
            return self.reason
        if self.status == "acknowledged":
            return f"{self.rows} rows loaded"
        if self.due_by is None:
            return "flow no longer in the config"
        if self.status == "overdue":
            return f"due by {self.due_by.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        from transfers.acknowledge import describe_left

        return f"{describe_left(self.due_by - (now or datetime.now(UTC)))} left"


def receipt_statuses(ledger: Ledger, config: Config, *, since: datetime | None = None,
                     until: datetime | None = None, flow: str | None = None,
                     now: datetime | None = None) -> list[DisclosureReceipt]:
    """Every disclosure recorded in [since, until) (of one ``<agreement>.<flow>`` if given), with its receipt status.

    Acknowledgements are looked for whenever they were recorded (a receipt can come after ``until``).
    """
    answers = list(ledger.records(Acknowledgement, ReceiptRefused, flow=flow))
    return receipts_of(config, ledger.records(Disclosure, flow=flow, since=since, until=until), answers, now=now)


def receipts_of(config: Config, disclosures: Iterable[Disclosure], answers: Iterable[Record], *,
                now: datetime | None = None) -> list[DisclosureReceipt]:
    """``disclosures`` with their receipt status, from records already read (``receipt_statuses`` reads them).

    Args:
        answers: Records in seq order holding at least every ``Acknowledgement`` and ``ReceiptRefused`` of these
            disclosures' flows, whenever recorded; records of other kinds are ignored. A later acknowledgement of a
            delivery stands over an earlier one.
    """
    now = now or datetime.now(UTC)
    acks: dict[str, Acknowledgement] = {}
    refused: dict[str, int] = {}
    for answer in answers:
        if isinstance(answer, Acknowledgement):
            acks[answer.delivery_id] = answer
        elif isinstance(answer, ReceiptRefused):
            refused[answer.delivery_id] = refused.get(answer.delivery_id, 0) + 1
    out = []
    for disclosure in disclosures:
        ds = disclosure.logical_date.isoformat() if disclosure.logical_date else ""
        flow_key = disclosure.flow or ""
        flow_id = flow_key.partition(".")[2] or flow_key
        did = delivery_id(disclosure.agreement, flow_id, ds, disclosure.recipient or "")
        found = acks.get(did)
        delivered = disclosure.when
        base = DisclosureReceipt(agreement=disclosure.agreement, flow=flow_key, logical_date=ds,
                                 recipient=disclosure.recipient or "", delivered_at=delivered, rows=disclosure.rows,
                                 delivery_id=did, status="pending", refused_receipts=refused.get(did, 0),
                                 disclosure_seq=disclosure.seq)
        if found is not None:
            out.append(replace(base, status=found.status, acknowledged_at=found.when,
                               signer_fingerprint=found.signer_fingerprint, receipt_sha256=found.receipt_sha256,
                               reason=found.reason, acknowledgement_seq=found.seq))
            continue
        due = _due(config, flow_key, delivered)
        out.append(replace(base, status="overdue" if due is not None and now > due else "pending", due_by=due))
    return out


def _due(config: Config, flow_key: str, delivered: datetime) -> datetime | None:
    from transfers.errors import TransferError

    try:
        ref = config.flow(flow_key)
    except TransferError:  # a flow no longer in the config: its disclosures are still shown, with no due date
        return None
    return ref.flow.receipt_within.after(delivered)
