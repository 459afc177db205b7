"""The demo's data under the demo's copy of the agreement: quality holds back exactly the seeded records,
the rectification notice names every one, and the demo's closing line says so.

No Airflow: the demo's sources are written as the demo writes them, read back through each flow's own
source, and checked with ``check_quality`` (the quality tests' ``run``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support.quality_flows import DAY, run
from transfers.agreement import Flow
from transfers.connections import ConnInfo
from transfers.devkit import demo, synthetic
from transfers.devkit.parties import hold_back_instead_of_blocking
from transfers.quality import QualityOutcome
from transfers.quality.rectify import read_notice
from transfers.settings import PROJECT_ROOT
from transfers.sources import extract

# Which characteristic each seeded defect fails, and the source column it is in (the test's own reading).
FAILS = {"nhs_check_digit": "accuracy", "future_birth": "accuracy", "missing_mandatory": "completeness",
         "duplicate_key": "reliability", "bad_postcode": "validity"}
FLOWS = {  # flow id: (records, record key, the mandatory field left empty)
    "A": (demo.REFERRALS, "referral_id", "risk_level"),
    "B": (demo.ATTENDANCES, "attendance_id", "safeguarding_flag"),
}


def demo_flow(flow_id: str) -> Flow:
    """The flow as the demo's copy of the sample agreement has it (``make_parties``)."""
    data = yaml.safe_load((PROJECT_ROOT / "config" / "agreements" / "mash-referrals.yaml").read_text())
    hold_back_instead_of_blocking(data, demo.HOLD_BACK)
    return Flow.model_validate(next(f for f in data["flows"] if f["id"] == flow_id))


def demo_extract(flow: Flow, tmp_path: Path) -> list[pd.DataFrame]:
    case_db, exports = tmp_path / "case-system.db", tmp_path / "trust-exports"
    demo.make_sources(case_db, exports, DAY)
    conn = (ConnInfo("cs_case_db", "sqlite", host=str(case_db)) if flow.source.kind == "sql"
            else ConnInfo("rft_exports", "fs", extra={"path": str(exports)}))
    return list(extract(flow.source, conn, config_dir=PROJECT_ROOT / "config", logical_date=DAY))


def seeded(flow_id: str) -> dict[str, list[int]]:
    """Each defect's extract rows (from 0): a duplicated key is on its row and the row before."""
    n = FLOWS[flow_id][0]
    rows = synthetic.defect_rows(n, synthetic.DEFECTS)
    return {d: [row - 1, row] if d == "duplicate_key" else [row] for d, row in rows.items()}


@dataclass
class DemoRun:
    flow: Flow
    extracted: pd.DataFrame
    outcome: QualityOutcome


@pytest.fixture(scope="module", params=list(FLOWS))
def demo_run(request, tmp_path_factory) -> DemoRun:
    """One quality run per flow over the demo's data, shared by the tests below (GX is slow to start)."""
    tmp_path = tmp_path_factory.mktemp(f"demo-{request.param}")
    flow = demo_flow(request.param)
    batches = demo_extract(flow, tmp_path)
    extracted = pd.concat([b.copy() for b in batches], ignore_index=True)
    return DemoRun(flow, extracted, run(batches, flow, report_dir=tmp_path / "reports"))


def test_quality_holds_back_exactly_the_seeded_records_and_the_notice_names_them(demo_run):
    flow, extracted, outcome = demo_run.flow, demo_run.extracted, demo_run.outcome
    n, key, mandatory = FLOWS[flow.id]

    rows = seeded(flow.id)
    held = sorted(r for d, rs in rows.items() if flow.quality.policy(FAILS[d]) == "quarantine" for r in rs)
    assert outcome.rows == n and outcome.blocked == []
    assert outcome.held_back_rows == len(held)
    assert outcome.quarantined_keys == {(extracted.at[r, key],) for r in held}

    notice = read_notice(outcome.rectification_csv)
    listed = {(int(line["row"]) - 1, line["field"], line["characteristic"]) for line in notice}
    column = {"nhs_check_digit": "nhs_number", "future_birth": "date_of_birth", "missing_mandatory": mandatory,
              "duplicate_key": key, "bad_postcode": "postcode"}
    for defect, defect_rows in rows.items():
        for row in defect_rows:
            assert (row, column[defect], FAILS[defect]) in listed, defect
    assert {row for row, _f, _c in listed} == {r for rs in rows.values() for r in rs}
    assert {line["record_key"] for line in notice} == {extracted.at[r, key] for rs in rows.values() for r in rs}
    assert outcome.rectification_html is not None and outcome.rectification_html.is_file()


CLOSING = {
    "A": "6 of 120 records held back: accuracy 2 (nhs_number, date_of_birth, referral_date), validity 1 "
         "(postcode), reliability 2 (record key), completeness 1 (risk_level)",
    "B": "5 of 80 records held back: accuracy 2 (nhs_number, date_of_birth), validity 1 (postcode), "
         "reliability 2 (record key); 1 more to fix, sent with a warning: completeness 1 (safeguarding_flag)",
}


def test_the_closing_line_says_how_many_were_held_back_and_why(demo_run):
    doc = json.loads(demo_run.outcome.report_json.read_text(encoding="utf-8"))
    assert demo.held_back(doc) == CLOSING[demo_run.flow.id]
