"""The prepare step as the DAG runs it (plan, one part per range of the extract, seal), called in this process.

The mapped phases must make what the one-pass step (``transfers run``) makes: the same prepared rows, the same
exclusions by reason, k judged over every part, the run's privacy entries once and the staged subjects whole.
"""

from __future__ import annotations

import pandas as pd
import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.privacy_world import edit_agreement, flow_of, payloads, write_ed, write_list
from tests.integration.test_quality_mapped import STAGING_ROWS
from transfers.devkit import synthetic
from transfers.errors import StateError

pytestmark = pytest.mark.integration

FLOW = "mash-referrals.B"


def _world(world) -> pd.DataFrame:
    """40 attendances, 10 rows a part: exclusions in every range, and k=2 only across the first and third."""
    frame = synthetic.ed_attendances(40, LOGICAL_DATE)
    frame["date_of_birth"], frame["postcode"] = "2014-03-01", "S60 1AA"
    frame.loc[[3, 30], ["date_of_birth", "postcode"]] = ["2012-01-01", "S66 4DD"]  # one group of 2, in two ranges
    numbers = list(frame["nhs_number"])
    register = write_list(world, "consent.csv", [
        {"subject": numbers[0], "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": numbers[16], "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": numbers[20], "status": "restricted", "effective": "2026-01-01"},
    ])
    opt_outs = write_list(world, "opt_outs.csv", [{"nhs_number": numbers[35]}])

    def declare(data: dict) -> None:
        flow = flow_of(data, "B")
        flow["consent"] = {
            "basis": "consent",
            "consent_register": {"kind": "csv", "connection": "rft_exports", "path": register},
            "opt_outs": {"kind": "csv", "connection": "rft_exports", "path": opt_outs, "subject": "nhs_number",
                         "status": None, "effective": None},
        }
        flow["disclosure_risk"] = {"quasi_identifiers": ["date_of_birth", "postcode"], "min_k": 2,
                                   "on_failure": "block"}

    edit_agreement(world, declare)
    write_ed(world, frame, LOGICAL_DATE)
    return frame


def _checked(world):
    from transfers.steps.check_agreement import check_agreement
    from transfers.steps.extract import extract
    from transfers.steps.quality import quality

    world.settings = world.settings.model_copy(update={"part_rows": 10})
    run, ledger, resolvers = world.run(FLOW), world.settings.open_ledger(), world.resolvers()
    check_agreement(run, resolvers, ledger)
    extract(run, resolvers, ledger)
    whole = pd.concat(list(run.staging.read_batches("extract")), ignore_index=True)
    run.staging.write_batches("extract", [whole.iloc[i:i + STAGING_ROWS] for i in range(0, len(whole), STAGING_ROWS)],
                              columns=run.staging.columns("extract"))
    quality(run, resolvers, ledger)
    return run, ledger, resolvers


def _prepared(run) -> tuple[pd.DataFrame, list[int] | None]:
    return pd.concat(list(run.staging.read_batches("prepared")), ignore_index=True), run.staging.part_rows("prepared")


def _subjects(run) -> dict:
    from transfers.privacy.subjects import SubjectIndex

    index = SubjectIndex.for_settings(run.settings)
    try:
        return index.digest("prepared", run.staging.read_json("subjects_ref"))
    finally:
        index.close()


def test_mapped_parts_prepare_what_the_one_pass_step_prepares_with_exclusions_summed_and_k_across_parts(world):
    from transfers.steps.prepare import prepare
    from transfers.steps.prepare_parts import plan_prepare, prepare_part, seal_prepare

    _world(world)
    run, ledger, resolvers = _checked(world)
    once = prepare(run, resolvers, ledger)
    rows_once, parts_once = _prepared(run)
    subjects_once = _subjects(run)

    planned = plan_prepare(run, resolvers, ledger)
    made = [prepare_part(run, resolvers, ledger, part) for part in planned]
    made[0] = prepare_part(run, resolvers, ledger, planned[0])  # Airflow ran it again: counted once
    mapped = seal_prepare(run, resolvers, ledger, planned, made)

    assert len(planned) == 3
    assert once["excluded"] == {"withdrawn": 2, "restricted": 1, "opted_out": 1}
    assert mapped == once
    # Each range alone has the (2012, S66) group once; over the whole extract it is two: k=2, not blocked.
    assert mapped["k"]["k"] == 2 and mapped["k"]["passed"] is True
    rows, parts = _prepared(run)
    pd.testing.assert_frame_equal(rows, rows_once)
    assert parts == parts_once and len(parts) == 6 and sum(parts) == 36  # one prepared part per extract part
    # The ledger keeps one entry per content (PrivacyResult.dedupe_key): the mapped seal's is the one-pass's.
    [entry] = payloads(world, "privacy", FLOW)
    assert (entry["excluded"], entry["rows_screened"], entry["rows_sent"]) == (once["excluded"], 40, 36)
    assert _subjects(run) == subjects_once and subjects_once["subjects"] == 36


def test_a_missing_part_result_stops_the_prepare_seal_naming_it_and_nothing_is_recorded(world):
    from transfers.steps.prepare_parts import plan_prepare, prepare_part, seal_prepare

    _world(world)
    run, ledger, resolvers = _checked(world)
    planned = plan_prepare(run, resolvers, ledger)
    made = [prepare_part(run, resolvers, ledger, part) for part in planned]
    (run.staging.run_dir / "prepare-part-00002.json.fernet").unlink()

    with pytest.raises(StateError, match=r"prepare part 'part-00002' \(rows 28\+12\) has no results"):
        seal_prepare(run, resolvers, ledger, planned, made)

    assert payloads(world, "privacy", FLOW) == []
    with pytest.raises(StateError, match="has not run"):
        run.staging.columns("prepared")  # no prepared stage to encrypt from
