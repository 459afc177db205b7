"""Retention gaps as ``ledger verify`` reports them: disclosed remote copies held past their period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def test_ledger_verify_reports_disclosed_copies_held_past_their_period(world, monkeypatch):
    from typer.testing import CliRunner

    from transfers.cli import app

    settings, config, ledger = world
    sent = datetime.now(UTC) - timedelta(days=20)  # remote period P14D: due 6 days ago
    entry, _ = ledger.append("disclosure", agreement="mash-referrals", flow="mash-referrals.A",
                             logical_date=sent.date(), recipient="south-yorkshire-police", at=sent,
                             dedupe_key="disclosure:a", payload={"rows": 3, "files": [
                                 {"remote_path": "inbound/mash/x.csv.pgp", "size": 10, "sha256": "0" * 64}]})
    gone, _ = ledger.append("disclosure", agreement="old", flow="old.A", at=sent, payload={"files": []})
    monkeypatch.setenv("TRANSFERS_HOME", str(settings.home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(settings.config_dir))

    result = CliRunner().invoke(app, ["ledger", "verify"])

    assert result.exit_code == 3
    assert (f"retention: entry {entry.seq}: disclosure mash-referrals.A {sent.date()} to south-yorkshire-police: "
            f"remote copy inbound/mash/x.csv.pgp was due for deletion on {(sent + timedelta(days=14)).date()}"
            ) in result.output
    assert f"entry {gone.seq}: disclosure of old.A" in result.output
    # Checked as on a day when the copy was still within its period, there is no gap for it.
    earlier = (sent + timedelta(days=1)).date().isoformat()
    within = CliRunner().invoke(app, ["ledger", "verify", "--as-of", earlier])
    assert f"entry {entry.seq}:" not in within.output
