"""Each disclosure's receipt status, read from a real (SQLite) ledger written through the records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from transfers.agreement import load_config
from transfers.ledger import Ledger
from transfers.ledger.records import Acknowledgement, Disclosure, ReceiptRefused
from transfers.receipt import delivery_id
from transfers.reports.receipts import receipt_statuses
from transfers.settings import PROJECT_ROOT

DAY = date(2026, 11, 20)
DELIVERED = datetime(2026, 11, 21, 2, 5, tzinfo=UTC)
FLOW = "mash-referrals.A"
SYP = "south-yorkshire-police"


@pytest.fixture
def ledger(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


@pytest.fixture
def config():
    return load_config(PROJECT_ROOT / "config", today=DAY)


def _disclose(ledger: Ledger, day: date, partner: str = SYP) -> str:
    ledger.record(Disclosure(agreement="mash-referrals", flow=FLOW, logical_date=day, recipient=partner, rows=12,
                             at=DELIVERED + (day - DAY)))
    return delivery_id("mash-referrals", "A", day.isoformat(), partner)


def _ack(ledger: Ledger, did: str, day: date, status: str = "acknowledged", reason: str = "") -> None:
    ledger.record(Acknowledgement(agreement="mash-referrals", flow=FLOW, logical_date=day, recipient=SYP,
                                  delivery_id=did, status=status, reason=reason, receipt_sha256="ab" * 32,
                                  signer_fingerprint="F" * 40, rows=12))


def test_each_disclosure_is_acknowledged_rejected_pending_or_overdue(ledger, config):
    acked = _disclose(ledger, DAY)
    _ack(ledger, acked, DAY)
    rejected = _disclose(ledger, DAY + timedelta(days=1))
    _ack(ledger, rejected, DAY + timedelta(days=1), "rejected", "part 1: unsigned")
    _disclose(ledger, DAY + timedelta(days=2))  # delivered 2026-11-23 02:05; receipt_within PT12H
    _disclose(ledger, DAY + timedelta(days=3))  # delivered 2026-11-24 02:05
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    found = {r.logical_date: r for r in receipt_statuses(ledger, config, now=now)}
    assert [found[d.isoformat()].status for d in (DAY + timedelta(days=n) for n in range(4))] == [
        "acknowledged", "rejected", "overdue", "pending"]
    assert found[DAY.isoformat()].signer_fingerprint == "F" * 40 and found[DAY.isoformat()].acknowledged_at
    assert found["2026-11-21"].reason == "part 1: unsigned"
    assert found["2026-11-23"].due_by == datetime(2026, 11, 24, 14, 5, tzinfo=UTC)  # delivered 11-24 02:05


def test_a_refused_receipt_is_counted_apart_and_never_acknowledges(ledger, config):
    did = _disclose(ledger, DAY)
    ledger.record(ReceiptRefused(agreement="mash-referrals", flow=FLOW, logical_date=DAY, recipient=SYP,
                                 delivery_id=did, reason="signed by a third key", receipt_sha256="cd" * 32))
    [status] = receipt_statuses(ledger, config, now=DELIVERED + timedelta(hours=1))
    assert (status.status, status.refused_receipts, status.receipt_sha256) == ("pending", 1, None)


def test_only_disclosures_in_the_period_are_listed_but_a_later_receipt_counts(ledger, config):
    did = _disclose(ledger, DAY)
    _disclose(ledger, DAY + timedelta(days=10))
    _ack(ledger, did, DAY)  # recorded now, long after the period below ends
    listed = receipt_statuses(ledger, config, since=DELIVERED - timedelta(hours=1),
                              until=DELIVERED + timedelta(days=1), now=DELIVERED)
    assert [(r.logical_date, r.status) for r in listed] == [(DAY.isoformat(), "acknowledged")]
