"""``transfers certificates``: each disclosure past its destroy-by and its destruction state; no server, no keys."""

from __future__ import annotations

from datetime import UTC, date, datetime

from typer.testing import CliRunner

from tests.support.tables import table_rows
from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import DestructionCertified, Disclosure
from transfers.receipt import delivery_id
from transfers.settings import PROJECT_ROOT

SYP, CS = "south-yorkshire-police", "rotherham-childrens-services"


def _invoke(monkeypatch, home, *args: str):
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
    monkeypatch.setenv("TRANSFERS_DESTRUCTION_GRACE_DAYS", "10")
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner().invoke(app, ["certificates", *args], catch_exceptions=False)


def test_each_disclosure_past_destroy_by_is_listed_with_its_state(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        for day, partner, flow in [(date(2026, 5, 1), SYP, "A"), (date(2026, 5, 20), SYP, "A"),
                                   (date(2026, 5, 2), CS, "B"), (date(2026, 9, 1), SYP, "A")]:
            ledger.record(Disclosure(agreement="mash-referrals", flow=f"mash-referrals.{flow}", logical_date=day,
                                     recipient=partner, rows=5, at=datetime(2026, 9, 2, tzinfo=UTC)))
        ledger.record(DestructionCertified(agreement="mash-referrals", flow="mash-referrals.A",
                                           logical_date=date(2026, 5, 1), recipient=SYP,
                                           delivery_id=delivery_id("mash-referrals", "A", "2026-05-01", SYP),
                                           certificate_sha256="ef" * 32, rows=5,
                                           destroyed_at="2032-05-01T02:00:00+00:00"))

    # 2032-05-25: 05-01 certified, 05-20 past its 10 days' grace, B's controller is its recipient, 09-01 not due.
    result = _invoke(monkeypatch, home, "--as-of", "2032-05-25")

    assert result.exit_code == 0, result.output
    rows = {row["flow, date, partner"]: row["destruction"] for row in table_rows(result.output)}
    assert set(rows) == {f"mash-referrals.A 2026-05-01 {SYP}", f"mash-referrals.A 2026-05-20 {SYP}",
                         f"mash-referrals.B 2026-05-02 {CS}"}
    assert "destroyed: 5 rows destroyed" in rows[f"mash-referrals.A 2026-05-01 {SYP}"]
    assert "ef" * 32 in rows[f"mash-referrals.A 2026-05-01 {SYP}"]
    assert rows[f"mash-referrals.A 2026-05-20 {SYP}"].startswith("awaiting")
    assert rows[f"mash-referrals.B 2026-05-02 {CS}"].startswith("at-controller")

    later = _invoke(monkeypatch, home, "--as-of", "2032-06-01", "--flow", "mash-referrals.A")
    rows = {row["flow, date, partner"]: row["destruction"] for row in table_rows(later.output)}
    assert rows[f"mash-referrals.A 2026-05-20 {SYP}"] == ("overdue: no certificate; destroy by 2032-05-20, "
                                                          "overdue since 2032-05-30")
    assert "mash-referrals.B" not in later.output


def test_nothing_past_destroy_by_says_so_and_an_unknown_flow_is_a_usage_error(tmp_path, monkeypatch):
    assert "no disclosures past their destroy-by" in _invoke(monkeypatch, tmp_path).output
    assert _invoke(monkeypatch, tmp_path, "--flow", "nope.Z").exit_code == 2
