"""Every table reads in an 80-column terminal: no line wider, and ids, dates and states never broken."""

from __future__ import annotations

import json

import pytest

from tests.support.tables import table_rows
from tests.unit.cli.conftest import CS, SYP

WIDTH = 80


def _narrow(result) -> str:
    assert result.exit_code == 0, result.output
    too_wide = [line for line in result.stdout.splitlines() if len(line) > WIDTH]
    assert too_wide == []
    return result.stdout


def test_receipts_keep_flow_date_partner_and_state_whole(invoke):
    rows = table_rows(_narrow(invoke("receipts", columns=WIDTH)))

    assert {row["flow, date, partner"] for row in rows} == {
        f"mash-referrals.A 2026-11-25 {SYP}",
        f"mash-referrals.B 2026-11-25 {CS}",
        f"mash-referrals.A 2026-05-01 {SYP}",
        f"mash-referrals.A 2026-05-20 {SYP}",
        f"mash-referrals.B 2026-05-02 {CS}",
    }
    assert [row["receipt"].split(":")[0] for row in rows] == ["overdue", "overdue", "rejected", "overdue", "overdue"]
    assert rows[2]["receipt"] == "rejected: column referral_reason missing from part 1"
    assert rows[0]["delivered (UTC)"] == "2026-11-26 04:02" and rows[0]["refused"] == "0"


def test_certificates_keep_flow_date_partner_destroy_by_and_state_whole(invoke):
    rows = table_rows(_narrow(invoke("certificates", "--as-of", "2032-06-01", columns=WIDTH)))

    assert [(row["flow, date, partner"], row["destroy by"], row["destruction"].split(":")[0]) for row in rows] == [
        (f"mash-referrals.A 2026-05-01 {SYP}", "2032-05-01", "destroyed"),
        (f"mash-referrals.A 2026-05-20 {SYP}", "2032-05-20", "overdue"),
        (f"mash-referrals.B 2026-05-02 {CS}", "2032-05-02", "at-controller"),
    ]
    assert rows[1]["destruction"] == "overdue: no certificate; destroy by 2032-05-20, overdue since 2032-05-30"


def test_notices_keep_flow_partner_notice_and_reference_whole(invoke):
    rows = table_rows(_narrow(invoke("notices", "confirmations", columns=WIDTH)))

    assert [(row["flow, partner"], row["notice"]) for row in rows][-2:] == [
        (f"mash-referrals.A {SYP}", "withdrawal d22d80aa7c4f"),
        (f"mash-referrals.A {CS}", "withdrawal 0b5e7f1c2a9d"),
    ]
    assert rows[-2]["confirmation"] == "confirmed: 2 rows deleted 2026-11-26 05:00"
    assert rows[-1]["confirmation"] == "unconfirmed"


def test_hold_list_keeps_the_entry_and_reason(invoke):
    [row] = table_rows(_narrow(invoke("hold", "list", columns=WIDTH, party=SYP)))

    assert row["#"] == "50" and row["held"].startswith("delivery in mash-referrals ")
    assert row["since (UTC), by"] == "2026-11-26 05:00 ig-officer"
    assert row["reason"] == "case 2032/7: judicial review of the referral decision"


def test_purge_dry_run_keeps_place_flow_and_dates_whole(invoke, home):
    shown = _narrow(invoke("purge", "--dry-run", "--as-of", "2027-06-01", columns=WIDTH))

    rows = table_rows(shown)
    assert len(rows) == 3
    assert {row["place, flow"] for row in rows} == {"remote mash-referrals.A", "remote mash-referrals.B"}
    assert {row["due, created"] for row in rows} == {"2026-12-08 2026-11-24"}
    assert f"local paths are under\n  {home.resolve()}/\n" in shown


def test_ledger_show_keeps_number_kind_time_and_values_whole(invoke, home):
    shown = _narrow(invoke("ledger", "show", columns=WIDTH))
    entries = [json.loads(line) for line in invoke("ledger", "show", "--json").stdout.splitlines()]

    text = shown.splitlines()
    for entry in entries:
        header = f"{entry['kind']}, recorded {entry['at'][:10]} {entry['at'][11:19]} UTC"
        [line] = [line for line in text if line.startswith(f"│ #{entry['seq']} ")]
        assert header in line or header.rsplit(" ", 1)[0] in line  # " UTC" may go to the next line
    assert any("│ status" in line and "rejected" in line for line in text)


@pytest.fixture
def deployment_env(monkeypatch):
    """Placeholders for every connection and secret validate checks are defined (not what they hold)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    host_key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    for conn_id in ("cs_case_db", "rft_exports"):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", "fs://placeholder")
    for conn_id in ("syp_sftp", "cs_sftp"):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            json.dumps({"conn_type": "sftp", "host": "sftp.partner.example", "extra": {"host_key": host_key}}),
        )
    monkeypatch.setenv("AIRFLOW_VAR_MASH_PSEUDONYM_KEY", "placeholder")
    monkeypatch.setenv("AIRFLOW_VAR_TRANSFERS_SIGNING_KEY", "placeholder")


def test_validate_keeps_flow_direction_partners_and_schedule_whole(invoke, deployment_env):
    shown = _narrow(invoke("validate", "--as-of", "2026-11-24", columns=WIDTH))

    rows = table_rows(shown)
    assert [row["flow"] for row in rows] == ["mash-referrals.A send", "mash-referrals.B send"]
    assert rows[0]["from, to"] == f"rotherham-childrens-services to {SYP}"
    assert all(row["schedule"] and row["fields"].isdigit() for row in rows)
