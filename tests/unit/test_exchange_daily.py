"""The daily exchange: each part runs whatever another met, and every problem is reported together."""

from __future__ import annotations

from datetime import UTC, date, datetime

from tests.support.config_edits import copy_config
from transfers.agreement import load_config
from transfers.errors import SecretMissing
from transfers.exchange_daily import run_daily_exchange
from transfers.flowrun import Resolvers
from transfers.ledger.records import CertificateIssued, Destroyed
from transfers.receipt import delivery_id
from transfers.settings import Settings


def _resolvers() -> Resolvers:
    def secret(name: str) -> str:
        raise SecretMissing(f"secret {name!r} is not set")

    def connection(conn_id: str):
        raise AssertionError(f"nothing to collect, so no connection is opened (asked for {conn_id!r})")

    return Resolvers(connection, secret)


def test_a_sender_with_nothing_due_does_nothing_and_reports_nothing(tmp_path):
    settings = Settings(home=tmp_path / "home", config_dir=copy_config(tmp_path))
    with settings.open_ledger() as ledger:
        done = run_daily_exchange(settings, load_config(settings.config_dir), ledger, _resolvers())
    assert done.summary() == {"notices_applied": 0, "certificates_issued": 0, "certificates_collected": 0,
                              "confirmations_collected": 0, "problems": 0}


def test_a_recipient_that_cannot_sign_reports_it_and_still_collects(tmp_path):
    settings = Settings(home=tmp_path / "home", config_dir=copy_config(tmp_path), party="south-yorkshire-police",
                        inbox_dir=tmp_path / "inbox")
    at = datetime(2026, 12, 25, tzinfo=UTC)
    with settings.open_ledger() as ledger:
        ledger.record(Destroyed(agreement="mash-referrals", flow="mash-referrals.A", logical_date=date(2026, 11, 25),
                                recipient="south-yorkshire-police", place="received",
                                delivery_id=delivery_id("mash-referrals", "A", "2026-11-25", "south-yorkshire-police"),
                                sender="rotherham-childrens-services", controller="rotherham-childrens-services",
                                rows=3, destroyed_at=at, at=at))
        done = run_daily_exchange(settings, load_config(settings.config_dir), ledger, _resolvers())
        assert list(ledger.records(CertificateIssued)) == []
    assert done.certificates_issued == 0
    assert [p for p in done.problems if p.startswith("destruction certificates:")] == [
        "destruction certificates: secret 'transfers_signing_key' is not set"]
