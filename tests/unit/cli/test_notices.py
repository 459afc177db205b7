"""``transfers notices apply`` and ``transfers notices confirmations``: what they print and how they exit."""

from __future__ import annotations

from datetime import UTC, datetime

from typer.testing import CliRunner

from tests.support.tables import table_rows
from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import Notice, NoticeConfirmed
from transfers.receive.notices import NoticeOutcome
from transfers.settings import PROJECT_ROOT

POLICE = "south-yorkshire-police"


def _invoke(monkeypatch, home, *args: str, party: str | None = POLICE):
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
    monkeypatch.setenv("TRANSFERS_INBOX_DIR", str(home / "inbox"))
    monkeypatch.setenv("COLUMNS", "300")
    if party:
        monkeypatch.setenv("TRANSFERS_PARTY", party)
    else:
        monkeypatch.delenv("TRANSFERS_PARTY", raising=False)
    return CliRunner().invoke(app, ["notices", *args], catch_exceptions=False)


def test_apply_needs_to_know_whose_inbox(tmp_path, monkeypatch):
    result = _invoke(monkeypatch, tmp_path, "apply", party=None)
    assert result.exit_code == 2 and "TRANSFERS_PARTY" in result.output


def test_apply_with_nothing_waiting_says_so(tmp_path, monkeypatch):
    result = _invoke(monkeypatch, tmp_path, "apply")
    assert result.exit_code == 0, result.output
    assert "no notice waiting" in result.output


def test_apply_prints_each_outcome_and_fails_when_one_was_refused(tmp_path, monkeypatch):
    outcomes = [NoticeOutcome("mash-referrals.A", "a.json.pgp", "applied", "withdrawal", "0123456789ab", 2,
                              ("received_mash_referrals_a",), ledger_seq=4),
                NoticeOutcome("mash-referrals.A", "b.json.pgp", "refused", reason="signed by key 66", ledger_seq=5)]
    monkeypatch.setattr("transfers.receive.notices.apply_notices", lambda *a, **k: outcomes)

    result = _invoke(monkeypatch, tmp_path, "apply")

    assert result.exit_code == 1
    assert "applied mash-referrals.A withdrawal notice 0123456789ab: 2 rows deleted in received_mash_referrals_a" \
        in result.output
    assert "refused b.json.pgp (mash-referrals.A): signed by key 66; nothing was done" in result.output


def test_confirmations_lists_each_notice_with_its_confirmation(tmp_path, monkeypatch):
    home = tmp_path / "cs"
    home.mkdir()
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        for partner, reference in ((POLICE, "0123456789ab"), ("rotherham-nhs-ft", "ba9876543210")):
            ledger.record(Notice(agreement="mash-referrals", flow="mash-referrals.A", recipient=partner,
                                 notice="withdrawal", lookup="d" * 64, occasion="withdrawn", reference=reference))
        ledger.record(NoticeConfirmed(agreement="mash-referrals", flow="mash-referrals.A", recipient=POLICE,
                                      reference="0123456789ab", notice="withdrawal", rows=3,
                                      at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC)))

    result = _invoke(monkeypatch, home, "confirmations", party=None)

    assert result.exit_code == 0, result.output
    rows = {row["flow, partner"]: row["confirmation"] for row in table_rows(result.output)}
    assert rows[f"mash-referrals.A {POLICE}"] == "confirmed: 3 rows deleted 2026-11-27 09:00"
    assert rows["mash-referrals.A rotherham-nhs-ft"] == "unconfirmed"


def test_confirmations_with_no_notice_sent(tmp_path, monkeypatch):
    result = _invoke(monkeypatch, tmp_path, "confirmations", party=None)
    assert result.exit_code == 0 and "no notices sent" in result.output
