"""Every extracted row is counted once: sent, held back by quality, or excluded by reason.

The real pipeline through ``transfers run`` (PostgreSQL-free flow B: the trust's CSV export, the real
sshd, the real gpg), on seeded data with a duplicated record key, a record failing accuracy and
subjects excluded under consent; the ledger entries, the CLI line, the scorecard and the notice must
all say the same numbers.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.privacy_world import edit_agreement, flow_of, payloads, sent, write_ed, write_list
from transfers.devkit import synthetic
from transfers.quality.rectify import read_notice

pytestmark = pytest.mark.integration

FLOW_B = "mash-referrals.B"
ED_DIR = "inbound/ed-attendances"
BAD_NHS = "9990001236"  # the check digit of 999000123 is 5


def test_extracted_is_sent_plus_held_back_plus_excluded_everywhere(world, gpg_partner, cli):
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    numbers = list(frame["nhs_number"])
    frame.at[5, "attendance_id"] = frame.at[0, "attendance_id"]  # a duplicated key: both rows held back
    frame.at[3, "nhs_number"] = BAD_NHS  # accuracy: held back
    write_ed(world, frame, LOGICAL_DATE)
    register = write_list(world, "consent.csv", [
        {"subject": numbers[10], "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": numbers[11], "status": "restricted", "effective": "2026-01-01"},
    ])
    opt_outs = write_list(world, "opt_outs.csv", [{"nhs_number": numbers[12]}])

    def declare(data: dict) -> None:
        flow = flow_of(data, "B")
        flow["quality"]["on_failure"].update({"accuracy": "quarantine", "reliability": "quarantine"})
        flow["consent"] = {
            "basis": "consent",
            "consent_register": {"kind": "csv", "connection": "rft_exports", "path": register},
            "opt_outs": {"kind": "csv", "connection": "rft_exports", "path": opt_outs, "subject": "nhs_number",
                         "status": None, "effective": None},
        }

    edit_agreement(world, declare)

    result = cli("run", FLOW_B, "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 0, result.output
    extracted, held, excluded, delivered = 30, 3, 3, 24
    assert f"{extracted} rows extracted, {delivered} sent, {held} held back by quality, {excluded} excluded" \
        in result.output
    assert len(sent(world, gpg_partner, ED_DIR)) == delivered

    (quality,) = payloads(world, "quality", FLOW_B)
    (privacy,) = payloads(world, "privacy", FLOW_B)
    (disclosure,) = payloads(world, "disclosure", FLOW_B)
    assert quality["rows"] == extracted and quality["held_back_rows"] == held
    assert quality["quarantined"] == 2  # record keys: the duplicated one and the bad NHS number's
    assert privacy["excluded"] == {"withdrawn": 1, "restricted": 1, "opted_out": 1}
    assert privacy["rows_screened"] == extracted - held and privacy["rows_sent"] == delivered
    assert disclosure["rows"] == delivered
    assert quality["rows"] == quality["held_back_rows"] + sum(privacy["excluded"].values()) + privacy["rows_sent"]

    reports = world.settings.home / "reports" / "mash-referrals" / "B"
    scorecard = json.loads((reports / f"quality_B_{LOGICAL_DATE}.json").read_text())
    assert scorecard["rows"] == extracted and scorecard["held_back_rows"] == held
    html = (reports / f"quality_B_{LOGICAL_DATE}.html").read_text()
    assert f"<tr><th>Records checked</th><td>{extracted} " in html
    assert f"<tr><th>Records held back</th><td>{held}</td></tr>" in html
    assert f"<strong>{held} records held back</strong>" in html
    assert f"<tr><th>Cleared by quality</th><td>{extracted - held} (consent" in html  # exclusions come after it

    notice_html = (reports / f"rectification_B_{LOGICAL_DATE}.html").read_text()
    assert f"<tr><th>Records held back</th><td>{held}</td></tr>" in notice_html
    notice = read_notice(reports / f"rectification_B_{LOGICAL_DATE}.csv")
    held_rows = {(r["record_key"], r["row"]) for r in notice if r["characteristic"] in ("accuracy", "reliability")}
    key = frame["attendance_id"]
    assert held_rows == {(key[0], "1"), (key[5], "6"), (key[3], "4")}  # the notice lists the 3 rows held back

    report = cli("report", "quality", FLOW_B, "--date", LOGICAL_DATE.isoformat())
    assert report.exit_code == 0, report.output
    assert f"{held} record(s) held back (2 record key(s))" in report.output
