"""``transfers hold add|remove|list``: legal holds recorded in the ledger, at the police's deployment."""

from __future__ import annotations

from datetime import UTC, date, datetime

from typer.testing import CliRunner

from tests.support.tables import table_rows
from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import LegalHold, Received
from transfers.receipt import delivery_id
from transfers.settings import PROJECT_ROOT

POLICE = "south-yorkshire-police"
ID = delivery_id("mash-referrals", "A", "2026-11-25", POLICE)


def _invoke(monkeypatch, home, *args: str, party: str | None = POLICE):
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
    monkeypatch.setenv("COLUMNS", "300")
    if party:
        monkeypatch.setenv("TRANSFERS_PARTY", party)
    else:
        monkeypatch.delenv("TRANSFERS_PARTY", raising=False)
    return CliRunner().invoke(app, ["hold", *args], catch_exceptions=False)


def _home(tmp_path):
    home = tmp_path / "syp"
    home.mkdir()
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        ledger.record(Received(agreement="mash-referrals", flow="mash-referrals.A", logical_date=date(2026, 11, 25),
                               recipient=POLICE, delivery_id=ID, sender="rotherham-childrens-services",
                               status="accepted", rows=4, at=datetime.now(UTC)))
    return home


def _holds(home):
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        return list(ledger.records(LegalHold))


def test_a_delivery_hold_is_added_listed_and_removed(tmp_path, monkeypatch):
    home = _home(tmp_path)

    added = _invoke(monkeypatch, home, "add", "--delivery", ID, "--reason", "case 2032/7", "--by", "ig-officer")
    assert added.exit_code == 0, added.output
    assert f"held: the delivery {ID} in mash-referrals (ledger entry 2, by ig-officer): case 2032/7" in added.output

    listed = _invoke(monkeypatch, home, "list")
    [row] = table_rows(listed.output)
    assert row == {"#": "2", "held": f"delivery in mash-referrals {ID}", "since (UTC), by": row["since (UTC), by"],
                   "reason": "case 2032/7"}
    assert row["since (UTC), by"].endswith(" ig-officer")

    removed = _invoke(monkeypatch, home, "remove", "--delivery", ID, "--reason", "case closed")
    assert removed.exit_code == 0, removed.output
    assert "no legal hold is in force" in _invoke(monkeypatch, home, "list").output
    assert [(h.action, h.scope, h.target, h.reason) for h in _holds(home)] == [
        ("add", "delivery", ID, "case 2032/7"), ("lift", "delivery", ID, "case closed")]


def test_a_subject_hold_takes_the_only_agreement_received_and_never_prints_the_pseudonym(tmp_path, monkeypatch):
    home = _home(tmp_path)
    added = _invoke(monkeypatch, home, "add", "--subject", "p-4f1c", "--reason", "case 2032/8")
    assert added.exit_code == 0, added.output
    assert "p-4f1c" not in added.output and "(pseudonym given)" in added.output
    (hold,) = _holds(home)
    assert (hold.scope, hold.agreement, hold.target) == ("subject", "mash-referrals", "p-4f1c")


def test_usage_errors_name_what_is_wrong_and_record_nothing(tmp_path, monkeypatch):
    home = _home(tmp_path)
    for args, message in [
        (["add", "--reason", "r"], "exactly one of --delivery ID or --subject PSEUDONYM"),
        (["add", "--delivery", ID, "--subject", "p", "--reason", "r"], "exactly one of"),
        (["add", "--delivery", "mash-referrals:A:2020-01-01:x", "--reason", "r"], "was never received here"),
        (["add", "--subject", "p", "--agreement", "other", "--reason", "r"], "this party receives no flow under it"),
        (["remove", "--delivery", ID], "no legal hold is in force on that delivery"),
    ]:
        result = _invoke(monkeypatch, home, *args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
    missing = _invoke(monkeypatch, home, "add", "--delivery", ID)
    assert missing.exit_code == 2 and "--reason" in missing.output
    no_party = _invoke(monkeypatch, home, "add", "--subject", "p", "--reason", "r", party=None)
    assert no_party.exit_code == 2 and "this party receives under no agreement" in no_party.output
    assert _holds(home) == []
