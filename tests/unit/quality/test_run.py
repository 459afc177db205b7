"""The quality run (``check_quality``): each defect caught by the right characteristic, with the right
counts, over batches, under each policy, and without leaving Great Expectations files behind.

The test flow, its clean data and the seeded defects are in ``tests/support/quality_flows.py``; what the
reports and the summary may show is tested in ``test_report.py``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.support.quality_flows import (
    BAD_NHS,
    BAD_POSTCODE,
    DAY,
    DEFECTS,
    EXTRA_VALUE,
    OUT_OF_SET,
    N,
    assert_no_record_values,
    clean,
    make_flow,
    run,
    set_all,
)
from transfers.agreement import DIMENSIONS, load_config
from transfers.devkit import synthetic
from transfers.quality import QualityOutcome, check_quality, keys

ROOT = Path(__file__).resolve().parents[3]


def failing(outcome: QualityOutcome) -> dict[str, tuple[int, int]]:
    """{dimension: (checks failed, records failing)} for the dimensions that failed."""
    return {d: (r.failed, r.failing_rows) for d, r in outcome.dimensions.items() if r.failed}


# --------------------------------------------------------------------------- clean data


def test_clean_data_passes_all_six():
    outcome = run([clean().iloc[:7], clean().iloc[7:]])
    assert outcome.rows == N
    assert list(outcome.dimensions) == list(DIMENSIONS)
    assert failing(outcome) == {}
    assert all(r.outcome == "pass" for r in outcome.dimensions.values())
    assert outcome.blocked == [] and outcome.quarantined_keys == set()
    assert all(r.checks > 0 and r.passed == r.checks for r in outcome.dimensions.values())


@pytest.mark.parametrize(
    "flow_key, make", [("mash-referrals.A", synthetic.referrals), ("mash-referrals.B", synthetic.ed_attendances)]
)
def test_the_sample_agreement_passes_its_synthetic_data(flow_key, make):
    flow = load_config(ROOT / "config").flow(flow_key).flow
    data = make(60, DAY)
    outcome = check_quality(
        [data.iloc[:25], data.iloc[25:]], flow, agreement_id="mash-referrals", logical_date=DAY, report_dir=None
    )
    assert failing(outcome) == {}, [c for c in outcome.checks if not c.success]
    assert outcome.rows == 60


# --------------------------------------------------------------------------- each defect, the right characteristic


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_is_caught_by_the_right_characteristic(defect):
    change, expected = DEFECTS[defect]
    outcome = run(change(clean()))
    assert failing(outcome) == expected
    assert sorted(outcome.blocked) == sorted(expected)


def test_duplicate_key_across_batches_is_caught():
    first, second = clean().iloc[:6].copy(), clean().iloc[6:].copy()
    second.loc[second.index[2], "referral_id"] = first.iloc[0]["referral_id"]
    outcome = run([first, second])
    assert failing(outcome) == {"reliability": (1, 2)}  # the first copy (batch one) fails as well as the later
    # each batch on its own is fine: GX alone could not see this
    assert failing(run([second])) == {}


def test_all_defects_together_counted_per_characteristic(tmp_path):
    df = clean(20)
    df.at[3, "nhs_number"] = BAD_NHS  # accuracy
    df.at[4, "referral_date"] = (DAY + timedelta(days=5)).isoformat()  # accuracy
    df.at[5, "postcode"] = BAD_POSTCODE  # validity
    df.at[11, "risk_level"] = OUT_OF_SET  # validity
    df.at[6, "referral_id"] = "R000002"  # reliability
    df.at[7, "referral_date"] = (DAY - timedelta(days=60)).isoformat()  # timeliness
    df.at[9, "risk_level"] = None  # completeness
    df.at[12, "risk_level"] = None  # completeness
    df["ethnicity"] = EXTRA_VALUE  # relevance
    df = df.drop(columns=["category"])  # relevance
    outcome = run([df.iloc[:10], df.iloc[10:]], report_dir=tmp_path)
    assert failing(outcome) == {
        "accuracy": (2, 2),
        "validity": (2, 2),
        "reliability": (1, 2),  # both copies of the duplicated key
        "timeliness": (1, 1),
        "relevance": (2, 0),
        "completeness": (1, 2),
    }
    notes = " ".join(outcome.dimensions["relevance"].notes)
    assert "ethnicity" in notes and "category" in notes and EXTRA_VALUE not in notes
    assert "unexpected column(s): ethnicity" in outcome.report_html.read_text(encoding="utf-8")
    assert_no_record_values(outcome, tmp_path)


def test_nulls_fail_only_completeness():
    df = clean()
    for column in ("postcode", "score", "category", "date_of_birth", "nhs_number"):
        df.at[8, column] = None
    assert failing(run(df)) == {"completeness": (2, 1)}  # date_of_birth and nhs_number are required


def test_required_share_is_judged_over_the_whole_extract_not_per_batch():
    flow = make_flow(required_nhs=0.8)
    df = clean()
    df.loc[[0, 1], "nhs_number"] = None  # 2 of 12 missing: 83% present overall, 67% in the first batch
    assert failing(run([df.iloc[:6], df.iloc[6:]], flow)) == {}
    df.loc[[2], "nhs_number"] = None  # 3 of 12: 75% < 80%
    assert failing(run([df.iloc[:6], df.iloc[6:]], flow)) == {"completeness": (1, 3)}


def test_max_age_catches_a_stale_extract_but_not_a_fresh_one_with_old_records():
    df = clean()
    df["referral_date"] = (DAY - timedelta(days=4)).isoformat()
    stale = run(df)
    assert failing(stale) == {"timeliness": (1, 0)}
    assert any("stale" in n for n in stale.dimensions["timeliness"].notes)
    df.at[0, "referral_date"] = DAY.isoformat()
    assert failing(run(df)) == {}
    assert failing(run(df.assign(referral_date=(DAY - timedelta(days=4)).isoformat()), make_flow(max_age=None))) == {}


# --------------------------------------------------------------------------- policies


def test_block_policy_blocks():
    outcome = run(DEFECTS["invalid check digit"][0](clean()))
    assert outcome.blocked == ["accuracy"]
    assert outcome.dimensions["accuracy"].outcome == "block"
    assert outcome.quarantined_keys == set()


def test_warn_policy_warns_and_lets_the_run_go_on():
    outcome = run(DEFECTS["invalid check digit"][0](clean()), make_flow({"accuracy": "warn"}))
    assert outcome.blocked == []
    assert outcome.dimensions["accuracy"].outcome == "warn"
    assert outcome.quarantined_keys == set()
    extra = run(set_all("ethnicity", EXTRA_VALUE)(clean()), make_flow({"relevance": "warn"}))
    assert extra.blocked == [] and extra.dimensions["relevance"].outcome == "warn"


def test_quarantine_holds_back_exactly_the_failing_records():
    df = clean()
    df.at[3, "nhs_number"] = BAD_NHS
    df.at[4, "referral_date"] = (DAY + timedelta(days=5)).isoformat()
    df.at[5, "postcode"] = BAD_POSTCODE  # validity: warn, so not held back
    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "accuracy": "quarantine", "validity": "warn"})
    outcome = run([df.iloc[:4], df.iloc[4:]], flow)
    assert outcome.blocked == []
    assert outcome.dimensions["accuracy"].outcome == "quarantine"
    assert outcome.dimensions["validity"].outcome == "warn"
    assert outcome.quarantined_keys == {("R000004",), ("R000005",)}
    # the keys are rendered as the pipeline renders them (``astype(str)``), so they match there
    keys = set(df[["referral_id"]].astype(str).apply(tuple, axis=1))
    assert outcome.quarantined_keys <= keys


def test_quarantine_of_a_duplicate_across_batches_and_a_compound_key():
    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "reliability": "quarantine"})
    flow = flow.model_copy(update={"record_key": ["referral_id", "risk_level"]})
    first, second = clean().iloc[:6].copy(), clean().iloc[6:].copy()
    second.loc[second.index[0], ["referral_id", "risk_level"]] = [
        first.iloc[1]["referral_id"],
        first.iloc[1]["risk_level"],
    ]
    second.loc[second.index[1], "referral_id"] = first.iloc[2]["referral_id"]  # same id, other risk: a new key
    outcome = run([first, second], flow)
    # referral_id (unique: true; its later copy) and the compound key (both copies): rows 1, 6 and 7
    assert failing(outcome) == {"reliability": (2, 3)}
    assert outcome.quarantined_keys == {
        (first.iloc[1]["referral_id"], first.iloc[1]["risk_level"]),
        (first.iloc[2]["referral_id"], second.iloc[1]["risk_level"]),
    }


def test_quarantine_of_a_whole_extract_failure_blocks():
    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "timeliness": "quarantine"})
    outcome = run(DEFECTS["stale extract"][0](clean()), flow)
    assert outcome.blocked == ["timeliness"]
    assert outcome.quarantined_keys == set()


# --------------------------------------------------------------------------- no GX project


def test_gx_stays_quiet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(clean())
    assert list(tmp_path.iterdir()) == []  # no gx/ project, no Data Docs
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


# --------------------------------------------------------------------------- chunks and compact keys


@pytest.fixture(params=[1, 100_000], ids=["each batch alone", "batches joined"])
def chunk_rows(request, monkeypatch):
    from transfers.quality import run as quality_run

    monkeypatch.setattr(quality_run, "CHUNK_ROWS", request.param)
    return request.param


def test_duplicates_across_batches_are_quarantined_whatever_the_chunk_size(chunk_rows, tmp_path):
    from transfers.quality.rectify import read_notice

    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "reliability": "quarantine"})
    parts = [clean(12).iloc[i : i + 3].copy() for i in range(0, 12, 3)]
    parts[2].loc[parts[2].index[1], "referral_id"] = parts[0].iloc[0]["referral_id"]
    parts[3].loc[parts[3].index[0], "referral_id"] = parts[0].iloc[0]["referral_id"]  # a third copy
    parts[3].loc[parts[3].index[2], "referral_id"] = parts[3].iloc[1]["referral_id"]  # within one batch
    outcome = run(parts, flow, report_dir=tmp_path)
    assert outcome.quarantined_keys == {("R000001",), ("R000011",)}
    assert outcome.held_back_rows == 5 and outcome.batches == 4
    assert failing(outcome) == {"reliability": (1, 5)}
    rows = [(line["record_key"], line["row"]) for line in read_notice(outcome.rectification_csv)]
    # each line in the batch it was found in: the first copy when its repeat is found, batch by batch
    assert rows == [("R000001", "1"), ("R000001", "8"), ("R000001", "10"), ("R000011", "11"), ("R000011", "12")]


def test_a_forced_hash_collision_quarantines_nothing(chunk_rows):
    def collide(columns, hash_key):
        return np.zeros(len(columns[0]), dtype=np.uint64)  # every key hashes alike

    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "reliability": "quarantine"})
    parts = [clean(12).iloc[i : i + 4].copy() for i in range(0, 12, 4)]
    outcome = run(parts, flow, digest=collide)
    assert failing(outcome) == {} and outcome.quarantined_keys == set()
    parts[2].loc[parts[2].index[3], "referral_id"] = parts[0].iloc[2]["referral_id"]
    outcome = run(parts, flow, digest=collide)
    assert outcome.quarantined_keys == {("R000003",)} and outcome.held_back_rows == 2


def test_record_keys_spilled_to_disk_give_the_same_outcome_and_are_deleted(tmp_path, monkeypatch):
    data = clean(40)
    data.loc[[17, 33], "referral_id"] = data.loc[[2, 5], "referral_id"].to_numpy()  # duplicates across batches
    frames = [data.iloc[i : i + 6] for i in range(0, 40, 6)]
    held = run([f.copy() for f in frames])
    monkeypatch.setattr(keys, "CAPACITY", 4)  # every index spills several runs
    spilled = run([f.copy() for f in frames], work_dir=tmp_path)
    assert failing(spilled) == failing(held) == {"reliability": (1, 4)}
    assert [c.failing for c in spilled.checks] == [c.failing for c in held.checks]
    assert list(tmp_path.iterdir()) == []


def test_record_keys_spilled_to_disk_are_deleted_when_a_batch_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(keys, "CAPACITY", 2)
    made: list[Path] = []

    def batches():
        yield clean(10)
        yield clean(10).drop(columns=["category"])  # other columns: the first batch is checked on its own
        made.extend(tmp_path.iterdir())  # the first batch's keys are on disk by now
        raise OSError("the source went away")

    with pytest.raises(OSError, match="went away"):
        check_quality(batches(), make_flow(), agreement_id="a", logical_date=DAY, report_dir=None, work_dir=tmp_path)
    assert made and list(tmp_path.iterdir()) == []
