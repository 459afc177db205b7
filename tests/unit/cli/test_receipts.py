"""``transfers receipts``: one row per disclosure in the ledger, its receipt's state; no server, no keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from typer.testing import CliRunner

from tests.support.tables import table_rows
from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import Acknowledgement, Disclosure
from transfers.receipt import delivery_id
from transfers.settings import PROJECT_ROOT


def _invoke(monkeypatch, home, *args: str):
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner().invoke(app, ["receipts", *args], catch_exceptions=False)


def test_each_disclosure_is_listed_with_its_receipt_and_pending_lists_only_the_unacknowledged(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    now = datetime.now(UTC)
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        for day, partner, flow in [(date(2026, 5, 1), "south-yorkshire-police", "A"),
                                   (date(2026, 5, 2), "south-yorkshire-police", "A"),
                                   (date(2026, 5, 2), "rotherham-childrens-services", "B")]:
            ledger.record(Disclosure(agreement="mash-referrals", flow=f"mash-referrals.{flow}", logical_date=day,
                                     recipient=partner, rows=5, at=now - timedelta(hours=30 if flow == "B" else 2)))
        ledger.record(Acknowledgement(agreement="mash-referrals", flow="mash-referrals.A",
                                      logical_date=date(2026, 5, 1), recipient="south-yorkshire-police",
                                      delivery_id=delivery_id("mash-referrals", "A", "2026-05-01",
                                                              "south-yorkshire-police"),
                                      status="rejected", reason="column x missing"))

    every = _invoke(monkeypatch, home)
    assert every.exit_code == 0, every.output
    rows = table_rows(every.output)
    assert len(rows) == 3
    assert rows[0]["receipt"] == "rejected: column x missing"
    assert rows[1]["receipt"].startswith("pending: 9h")  # PT12H after a delivery two hours ago
    assert rows[2]["receipt"].startswith("overdue")

    pending = _invoke(monkeypatch, home, "--pending", "--flow", "mash-referrals.A")
    rows = table_rows(pending.output)
    assert [row["flow, date, partner"] for row in rows] == ["mash-referrals.A 2026-05-02 south-yorkshire-police"]


def test_an_unknown_flow_is_a_usage_error(tmp_path, monkeypatch):
    result = _invoke(monkeypatch, tmp_path, "--flow", "nope.Z")
    assert result.exit_code == 2
