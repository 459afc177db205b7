"""The ledger read once for a report: the period's records, and what judging them needs from outside it.

The IG report shows entries recorded in ``[since, until)``, but judges them with records that can come at
any time: a receipt acknowledged after the period, a destruction certificate years later, a notice's
confirmation, a legal hold lifted. Its destruction section lists every disclosure, whenever made. So the
ledger is read in three disjoint slices, every entry at most once:

    before   ``[.., since)``     disclosures and the answers (``ANSWER_KINDS``) only
    period   ``[since, until)``  every kind the report shows (``PERIOD_KINDS``) and the answers
    after    ``[until, ..)``     disclosures and the answers only

The chain check (``ledger verify``) and the listing of copies held now read the ledger on their own; both
are about the whole ledger, not the period.

The Airflow UI's flow page uses ``flow_statuses``: one read of one flow's disclosures and answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from transfers.ledger.records import (
    Acknowledgement,
    CertificateRefused,
    Destroyed,
    DestructionCertified,
    Disclosure,
    Incident,
    LegalHold,
    Notice,
    NoticeConfirmationRefused,
    NoticeConfirmed,
    PrivacyResult,
    PseudonymKey,
    Purged,
    PurgeFailed,
    ReceiptRefused,
    Record,
    SharedWithoutConsent,
)
from transfers.reports.destruction import DisclosureDestruction, destruction_of
from transfers.reports.receipts import DisclosureReceipt, receipts_of

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.ledger import Ledger

__all__ = ["ANSWER_KINDS", "PERIOD_KINDS", "PeriodRecords", "flow_statuses", "read_period"]

R = TypeVar("R", bound=Record)

#: What the report lists for the period (its own sections and ``ig_evidence``'s).
PERIOD_KINDS: tuple[type[Record], ...] = (Disclosure, SharedWithoutConsent, Purged, PurgeFailed, Destroyed,
                                          Incident, PrivacyResult, Notice, PseudonymKey)
#: What says where a disclosure, a notice or a hold stands, whenever it was recorded.
ANSWER_KINDS: tuple[type[Record], ...] = (Acknowledgement, ReceiptRefused, DestructionCertified, CertificateRefused,
                                          NoticeConfirmed, NoticeConfirmationRefused, LegalHold)


@dataclass(frozen=True)
class PeriodRecords:
    """One reading of the ledger for ``[since, until)``; every sequence in seq order."""

    since: datetime
    until: datetime
    period: tuple[Record, ...]  # every PERIOD_KINDS record recorded in [since, until)
    disclosures: tuple[Disclosure, ...]  # every disclosure, whenever recorded
    answers: tuple[Record, ...]  # every ANSWER_KINDS record, whenever recorded

    def of(self, cls: type[R]) -> Iterator[R]:
        """The period's records of one kind."""
        return (r for r in self.period if isinstance(r, cls))


def read_period(ledger: Ledger, since: datetime, until: datetime) -> PeriodRecords:
    """Read the ledger in the three slices the module docstring draws."""
    before = list(ledger.records(Disclosure, *ANSWER_KINDS, until=since))
    during = list(ledger.records(*PERIOD_KINDS, *ANSWER_KINDS, since=since, until=until))
    after = list(ledger.records(Disclosure, *ANSWER_KINDS, since=until))
    # An entry's time need not rise with its seq (a record carries when it happened), and a later answer stands
    # over an earlier one by seq: so the slices are merged in seq order, not laid end to end.
    everything = sorted((*before, *during, *after), key=_seq)
    return PeriodRecords(
        since=since,
        until=until,
        period=tuple(r for r in during if isinstance(r, PERIOD_KINDS)),
        disclosures=tuple(r for r in everything if isinstance(r, Disclosure)),
        answers=tuple(r for r in everything if isinstance(r, ANSWER_KINDS)),
    )


def flow_statuses(ledger: Ledger, config: Config, flow: str, *, grace_days: int,
                  now: datetime) -> tuple[list[DisclosureReceipt], list[DisclosureDestruction]]:
    """Receipt and destruction status of every disclosure of one ``<agreement>.<flow>``, from one read of that
    flow's disclosures, receipts and certificates (the same as ``receipt_statuses`` and ``destruction_statuses``
    with ``flow=``)."""
    disclosures: list[Disclosure] = []
    answers: list[Record] = []
    for record in ledger.records(Disclosure, Acknowledgement, ReceiptRefused, DestructionCertified,
                                 CertificateRefused, flow=flow):
        if isinstance(record, Disclosure):
            disclosures.append(record)
        else:
            answers.append(record)
    return (receipts_of(config, disclosures, answers, now=now),
            destruction_of(config, disclosures, answers, grace_days=grace_days, now=now))


def _seq(record: Record) -> int:
    return record.seq or 0
