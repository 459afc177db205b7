"""The quality step as the DAG runs it (plan, one part per range of the extract, seal), called in this process.

The mapped phases must judge exactly what the one-pass step (``transfers run``) judges: the same ledger
summary, quarantine and rectification notice, uniqueness across parts included. The Airflow run of the same
phases, as mapped tasks, is in ``tests/integration/test_dag_run.py``.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.test_quality_pipeline import BAD_NHS, FLOW_B, edit_flow_b, export_b, notice_rows, pd_day
from transfers.devkit import synthetic
from transfers.errors import QualityBlocked, StateError

pytestmark = pytest.mark.integration

STAGING_ROWS = 7  # extract staging parts of 7 rows; with part_rows 10, ranges of two staging parts (14 rows)


def _defects(rows: int = 40) -> pd.DataFrame:
    frame = synthetic.ed_attendances(rows, LOGICAL_DATE)
    frame.at[1, "nhs_number"] = BAD_NHS  # accuracy
    frame.at[4, "postcode"] = "ZZ99 QQQ"  # validity
    frame.at[9, "arrived_at"] = (pd_day(LOGICAL_DATE) - timedelta(days=20)).isoformat()  # timeliness
    frame.at[30, "safeguarding_flag"] = None  # completeness
    # reliability: row 33 repeats row 2's key. Rows 0-13 are the first range, 28-39 the third: only a check
    # across ranges sees it.
    frame.at[33, "attendance_id"] = frame.at[2, "attendance_id"]
    return frame


def _extracted(world, frame: pd.DataFrame):
    from transfers.steps.check_agreement import check_agreement
    from transfers.steps.extract import extract

    export_b(world, LOGICAL_DATE, frame)
    world.settings = world.settings.model_copy(update={"part_rows": 10})
    run, ledger, resolvers = world.run(FLOW_B), world.settings.open_ledger(), world.resolvers()
    check_agreement(run, resolvers, ledger)
    extract(run, resolvers, ledger)
    whole = pd.concat(list(run.staging.read_batches("extract")), ignore_index=True)
    run.staging.write_batches("extract", [whole.iloc[i:i + STAGING_ROWS] for i in range(0, len(whole), STAGING_ROWS)],
                              columns=run.staging.columns("extract"))
    return run, ledger, resolvers


def _one_pass(run, ledger, resolvers):
    from transfers.steps.quality import quality

    try:
        result = quality(run, resolvers, ledger)
    except QualityBlocked:
        result = None
    return result, _judged(run, ledger)


def _mapped(run, ledger, resolvers, *, drop: str | None = None):
    from transfers.steps.quality_parts import plan_quality, quality_part, seal_quality

    planned = plan_quality(run, resolvers, ledger)
    made = [quality_part(run, resolvers, ledger, part) for part in planned]
    if drop:
        (run.staging.run_dir / f"quality-{drop}.json.fernet").unlink()
    try:
        result = seal_quality(run, resolvers, ledger, planned, made)
    except QualityBlocked:
        result = None
    return planned, result, _judged(run, ledger)


def _judged(run, ledger):
    """What the step left: its last ledger summary, the staged quarantine and the notice's lines (as a set)."""
    summary = list(ledger.entries(kind="quality", flow=FLOW_B))[-1].payload
    notice = notice_rows(run.reports_dir / f"rectification_B_{LOGICAL_DATE}.csv")
    lines = {tuple(sorted(r.items())) for r in notice}
    return summary, sorted(map(tuple, run.staging.read_json("quarantine"))), lines


@pytest.mark.parametrize("policy", ["quarantine", "block"])
def test_mapped_parts_judge_what_the_one_pass_step_judges_a_key_repeated_across_parts_included(world, policy):
    edit_flow_b(world, on_failure=dict.fromkeys(
        ("accuracy", "validity", "reliability", "timeliness", "completeness"), policy))
    frame = _defects()
    run, ledger, resolvers = _extracted(world, frame)
    once, (summary, quarantine, notice) = _one_pass(run, ledger, resolvers)

    planned, mapped, (m_summary, m_quarantine, m_notice) = _mapped(run, ledger, resolvers)

    assert [(p["first"], p["stop"], p["start"], p["rows"]) for p in planned] == [
        (0, 2, 0, 14), (2, 4, 14, 14), (4, 6, 28, 12)]
    assert m_summary == summary and m_quarantine == quarantine and m_notice == notice and mapped == once
    assert summary["dimensions"]["reliability"]["failing_rows"] == 2  # both copies of the repeated key
    assert summary["dimensions"]["reliability"]["outcome"] == policy
    repeated = str(frame.at[2, "attendance_id"])
    key_lines = [dict(line) for line in m_notice if ("check", "reliability.record_key") in line]
    assert sorted((line["row"], line["record_key"]) for line in key_lines) == [("3", repeated), ("34", repeated)]
    if policy == "quarantine":
        assert (repeated,) in m_quarantine and mapped is not None and mapped["held_back_rows"] == 6
    else:
        assert mapped is None and m_summary["blocked"]


def test_a_key_repeated_in_two_parts_is_caught_only_by_the_seal(world):
    """Each part alone sees the key once: the failure comes from the seal's check across parts."""
    from transfers.steps.quality_parts import plan_quality, quality_part

    edit_flow_b(world, on_failure={"reliability": "quarantine"})
    frame = synthetic.ed_attendances(40, LOGICAL_DATE)
    frame.at[33, "attendance_id"] = frame.at[2, "attendance_id"]
    run, ledger, resolvers = _extracted(world, frame)
    planned = plan_quality(run, resolvers, ledger)
    made = [quality_part(run, resolvers, ledger, part) for part in planned]
    assert [m["failing"] for m in made] == [0, 0, 0]

    _planned, result, (summary, quarantine, _notice) = _mapped(run, ledger, resolvers)

    assert summary["dimensions"]["reliability"] == {**summary["dimensions"]["reliability"], "failed": 1,
                                                    "failing_rows": 2, "outcome": "quarantine"}
    assert quarantine == [(frame.at[2, "attendance_id"],)]
    assert result is not None and (result["quarantined"], result["held_back_rows"]) == (1, 2)


def test_a_missing_part_result_stops_the_seal_naming_it_and_nothing_is_recorded(world):
    edit_flow_b(world, on_failure={"reliability": "quarantine"})
    run, ledger, resolvers = _extracted(world, synthetic.ed_attendances(40, LOGICAL_DATE))

    with pytest.raises(StateError, match=r"quality part 'part-00001' \(rows 14\+14\) has no results"):
        _mapped(run, ledger, resolvers, drop="part-00001")

    assert list(ledger.entries(kind="quality", flow=FLOW_B)) == []


def test_a_retried_part_overwrites_its_results_and_is_counted_once(world):
    from transfers.steps.quality_parts import plan_quality, quality_part, seal_quality

    edit_flow_b(world, on_failure={"accuracy": "quarantine"})
    frame = synthetic.ed_attendances(40, LOGICAL_DATE)
    frame.at[15, "nhs_number"] = BAD_NHS  # in the second range
    run, ledger, resolvers = _extracted(world, frame)
    planned = plan_quality(run, resolvers, ledger)
    made = [quality_part(run, resolvers, ledger, part) for part in planned]
    made[1] = quality_part(run, resolvers, ledger, planned[1])  # Airflow ran it again

    result = seal_quality(run, resolvers, ledger, planned, made)

    (entry,) = ledger.entries(kind="quality", flow=FLOW_B)
    assert entry.payload["rows"] == 40 and entry.payload["dimensions"]["accuracy"]["failing_rows"] == 1
    assert (result["quarantined"], result["held_back_rows"]) == (1, 1)


def test_an_empty_extract_is_one_empty_range_judged_as_the_one_pass_step_judges_it(world):
    run, ledger, resolvers = _extracted(world, synthetic.ed_attendances(40, LOGICAL_DATE).iloc[:0])
    assert run.staging.part_rows("extract") == []
    once, judged = _one_pass(run, ledger, resolvers)

    planned, mapped, mapped_judged = _mapped(run, ledger, resolvers)

    assert [(p["first"], p["stop"], p["rows"]) for p in planned] == [(0, 0, 0)]
    assert mapped_judged == judged and mapped == once
    assert judged[0]["rows"] == 0 and judged[0]["dimensions"]["completeness"]["failed"] == 1
