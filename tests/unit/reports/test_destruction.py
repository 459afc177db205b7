"""Each disclosure's destruction state, read from a real (SQLite) ledger written through the records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from transfers.agreement import load_config
from transfers.ledger import Ledger
from transfers.ledger.records import CertificateRefused, DestructionCertified, Disclosure
from transfers.receipt import delivery_id
from transfers.reports.destruction import destroy_by, destruction_gaps, destruction_statuses
from transfers.settings import PROJECT_ROOT

DAY = date(2026, 11, 20)
DESTROY_BY = date(2032, 11, 20)  # P6Y
SYP, CS, RFT = "south-yorkshire-police", "rotherham-childrens-services", "rotherham-nhs-ft"


@pytest.fixture
def ledger(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


@pytest.fixture
def config():
    return load_config(PROJECT_ROOT / "config", today=DAY)


def _disclose(ledger: Ledger, day: date = DAY, flow: str = "A", partner: str = SYP) -> str:
    ledger.record(Disclosure(agreement="mash-referrals", flow=f"mash-referrals.{flow}", logical_date=day,
                             recipient=partner, rows=12, at=datetime.combine(day, datetime.min.time(), UTC)))
    return delivery_id("mash-referrals", flow, day.isoformat(), partner)


def _states(ledger, config, now: datetime, grace: int = 30) -> dict[str, str]:
    return {s.logical_date: s.status for s in destruction_statuses(ledger, config, grace_days=grace, now=now)}


def test_destroy_by_is_the_controller_s_period_after_the_logical_date(config):
    assert destroy_by(config.flow("mash-referrals.A"), DAY) == DESTROY_BY


def test_not_due_then_awaiting_then_overdue_after_the_grace_days(ledger, config):
    _disclose(ledger)
    start = datetime(2032, 11, 20, tzinfo=UTC)
    assert _states(ledger, config, start - timedelta(seconds=1)) == {DAY.isoformat(): "not-due"}
    assert _states(ledger, config, start) == {DAY.isoformat(): "awaiting"}
    assert _states(ledger, config, start + timedelta(days=30) - timedelta(seconds=1)) == {DAY.isoformat(): "awaiting"}
    assert _states(ledger, config, start + timedelta(days=30)) == {DAY.isoformat(): "overdue"}
    assert _states(ledger, config, start + timedelta(days=5), grace=5) == {DAY.isoformat(): "overdue"}
    [state] = destruction_statuses(ledger, config, grace_days=30, now=start + timedelta(days=31))
    assert (state.destroy_by, state.overdue_from, state.controller) == (DESTROY_BY, date(2032, 12, 20), CS)
    assert "overdue since 2032-12-20" in state.detail()


def test_a_verified_certificate_makes_it_destroyed_and_a_refused_one_never_does(ledger, config):
    did = _disclose(ledger)
    ledger.record(CertificateRefused(agreement="mash-referrals", flow="mash-referrals.A", logical_date=DAY,
                                     recipient=SYP, delivery_id=did, reason="wrong key", certificate_sha256="cd" * 32))
    late = datetime(2033, 6, 1, tzinfo=UTC)
    [refused_only] = destruction_statuses(ledger, config, grace_days=30, now=late)
    assert (refused_only.status, refused_only.refused_certificates) == ("overdue", 1)
    ledger.record(DestructionCertified(agreement="mash-referrals", flow="mash-referrals.A", logical_date=DAY,
                                       recipient=SYP, delivery_id=did, certificate_sha256="ef" * 32, rows=12,
                                       destroyed_at="2032-11-20T03:00:00+00:00", signer_fingerprint="F" * 40))
    [state] = destruction_statuses(ledger, config, grace_days=30, now=late)
    assert (state.status, state.certificate_sha256, state.destroyed_at) == ("destroyed", "ef" * 32,
                                                                           "2032-11-20T03:00:00+00:00")
    assert destruction_gaps(ledger, config, grace_days=30, now=late) == []


def test_a_controller_that_is_the_recipient_is_never_overdue_here(ledger, config):
    _disclose(ledger, flow="B", partner=CS)  # flow B: sent by the trust to the controller itself
    [state] = destruction_statuses(ledger, config, grace_days=0, now=datetime(2040, 1, 1, tzinfo=UTC))
    assert state.status == "at-controller" and "its own ledger" in state.detail()


def test_only_overdue_disclosures_are_gaps_naming_the_entry_and_the_recipient(ledger, config):
    _disclose(ledger)
    _disclose(ledger, DAY + timedelta(days=60))  # destroy-by 2033-01-19: awaiting on the day below
    gaps = destruction_gaps(ledger, config, grace_days=30, now=datetime(2033, 1, 20, tzinfo=UTC))
    assert len(gaps) == 1
    assert gaps[0].startswith("entry 1: disclosure mash-referrals.A 2026-11-20 to south-yorkshire-police")
    assert "destroy by 2032-11-20" in gaps[0] and "overdue since 2032-12-20" in gaps[0]
