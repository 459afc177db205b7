"""``--json`` on the reporting commands: JSON Lines on stdout (one object a row), nothing else there."""

from __future__ import annotations

import json

from tests.unit.cli.conftest import CS, RECEIVED_ID, SYP


def _lines(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]  # every line is one object, or this fails


def test_receipts_json_has_a_line_per_disclosure_with_its_state(invoke):
    shown = _lines(invoke("receipts", "--json"))

    by_delivery = {(r["flow"], r["logical_date"], r["recipient"]): r for r in shown}
    assert len(shown) == 5 == len(by_delivery)  # the run's two disclosures and the three after it
    rejected = by_delivery[("mash-referrals.A", "2026-05-01", SYP)]
    assert rejected["status"] == "rejected" and rejected["detail"] == "column referral_reason missing from part 1"
    assert rejected["delivery_id"] == f"mash-referrals:A:2026-05-01:{SYP}"
    assert by_delivery[("mash-referrals.B", "2026-05-02", CS)]["status"] == "overdue"
    assert by_delivery[("mash-referrals.B", "2026-05-02", CS)]["delivered_at"] == "2026-11-24T23:00:00+00:00"

    pending = _lines(invoke("receipts", "--pending", "--flow", "mash-referrals.A", "--json"))
    assert {(r["logical_date"], r["status"]) for r in pending} == {("2026-11-25", "overdue"), ("2026-05-20", "overdue")}


def test_certificates_json_has_a_line_per_disclosure_past_destroy_by(invoke):
    shown = _lines(invoke("certificates", "--as-of", "2032-06-01", "--json"))

    states = {(r["flow"], r["logical_date"]): r for r in shown}
    assert set(states) == {
        ("mash-referrals.A", "2026-05-01"),
        ("mash-referrals.A", "2026-05-20"),
        ("mash-referrals.B", "2026-05-02"),
    }
    assert states[("mash-referrals.A", "2026-05-01")]["status"] == "destroyed"
    assert states[("mash-referrals.A", "2026-05-01")]["certificate_sha256"] == "ef" * 32
    late = states[("mash-referrals.A", "2026-05-20")]
    assert (late["status"], late["destroy_by"], late["overdue_from"]) == ("overdue", "2032-05-20", "2032-05-30")
    assert states[("mash-referrals.B", "2026-05-02")]["status"] == "at-controller"


def test_notice_confirmations_json_has_a_line_per_notice_sent(invoke):
    shown = _lines(invoke("notices", "confirmations", "--json"))

    assert [(r["flow"], r["recipient"], r["reference"], r["status"]) for r in shown][-2:] == [
        ("mash-referrals.A", SYP, "d22d80aa7c4f", "confirmed"),
        ("mash-referrals.A", CS, "0b5e7f1c2a9d", "unconfirmed"),
    ]
    assert shown[-2]["rows"] == 2 and shown[-2]["detail"] == "confirmed: 2 rows deleted 2026-11-26 05:00"
    assert len(shown) == 4  # and the run's two notices, to the trust


def test_hold_list_json_has_a_line_per_hold_in_force(invoke):
    [hold] = _lines(invoke("hold", "list", "--json", party=SYP))

    assert hold == {
        "scope": "delivery",
        "agreement": "mash-referrals",
        "target": RECEIVED_ID,
        "reason": "case 2032/7: judicial review of the referral decision",
        "by": "ig-officer",
        "since": "2026-11-26T05:00:00+00:00",
        "seq": 50,
    }


def test_an_empty_answer_is_no_line_at_all(tmp_path, invoke, home):
    for db in home.glob("ledger.*"):
        db.unlink()
    for args in (["receipts"], ["certificates"], ["notices", "confirmations"], ["hold", "list"]):
        result = invoke(*args, "--json", party=SYP)
        assert result.exit_code == 0 and result.stdout == "", (args, result.stdout)
