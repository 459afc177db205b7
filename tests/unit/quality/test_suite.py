"""A flow's suite: derived from the agreement, merged with hand-written GX expectations, exported."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support.quality_flows import DAY, clean, make_flow
from tests.support.quality_flows import run as run_quality
from transfers.agreement import DIMENSIONS
from transfers.errors import ConfigError
from transfers.quality import build_suite
from transfers.quality.suite import export_suite, load_expectations, suite_path

ROOT = Path(__file__).resolve().parents[3]
AGREEMENT = "test-agreement"


def write_suite(directory: Path, expectations: list[dict]) -> Path:
    path = suite_path(directory, AGREEMENT, "T")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": f"{AGREEMENT}.T", "expectations": expectations}))
    return path


HIGH_SCORE = {
    # values reach expectations as extracted text, so a regex rather than a numeric range
    "type": "expect_column_values_to_match_regex",
    "kwargs": {"column": "score", "regex": "^[0-5]$"},
    "meta": {"dimension": "accuracy", "check": "accuracy.low_score", "description": "score is at most 5"},
}


def test_hand_written_expectation_is_scored_in_its_characteristic(tmp_path):
    write_suite(tmp_path, [HIGH_SCORE])
    data = clean()
    high = int((data["score"].dropna().astype(int) > 5).sum())
    assert high > 0
    outcome = run_quality(data, expectations_dir=tmp_path)
    result = next(c for c in outcome.checks if c.id == "accuracy.low_score")
    assert (result.dimension, result.failing, result.success) == ("accuracy", high, False)
    assert outcome.dimensions["accuracy"].failing_rows == high
    assert outcome.blocked == ["accuracy"]
    # the same data without the hand-written suite passes
    assert run_quality(clean()).blocked == []


def test_pair_expectation_checks_cross_field_order(tmp_path):
    write_suite(
        tmp_path,
        [
            {
                "type": "expect_column_pair_values_a_to_be_greater_than_b",
                "kwargs": {"column_A": "referral_date", "column_B": "date_of_birth"},
                "meta": {"dimension": "accuracy"},
            }
        ],
    )
    data = clean()
    data.loc[4, "date_of_birth"] = "2026-12-31"
    outcome = run_quality(data, flow=make_flow(), expectations_dir=tmp_path)
    custom = next(c for c in outcome.checks if c.id == "accuracy.custom.0")
    assert custom.failing == 1


@pytest.mark.parametrize(
    ("meta", "problem"),
    [({}, "it is missing"), ({"dimension": "speed"}, "'speed' is not one of them")],
)
def test_expectation_without_a_dimension_is_a_config_error_naming_file_and_expectation(tmp_path, meta, problem):
    path = write_suite(tmp_path, [HIGH_SCORE, {**HIGH_SCORE, "meta": meta}])
    with pytest.raises(ConfigError) as caught:
        load_expectations(path, make_flow())
    (message,) = caught.value.problems
    assert message.startswith(f"{path}: expectations[1] (expect_column_values_to_match_regex): meta.dimension")
    assert problem in message
    # and a run refuses before reading any data
    with pytest.raises(ConfigError):
        run_quality(clean(), expectations_dir=tmp_path)


def test_unknown_column_and_table_level_expectations_are_refused(tmp_path):
    path = write_suite(
        tmp_path,
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "shoe_size"},
             "meta": {"dimension": "completeness"}},
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
             "meta": {"dimension": "completeness"}},
        ],
    )
    with pytest.raises(ConfigError) as caught:
        load_expectations(path, make_flow())
    first, second = caught.value.problems
    assert "expectations[0]" in first and "shoe_size" in first
    assert "expectations[1]" in second and "record-level" in second


def test_export_writes_the_derived_suite_keeps_hand_written_and_loads_back(tmp_path):
    write_suite(tmp_path, [HIGH_SCORE])
    flow = make_flow()
    path = export_suite(flow, agreement_id=AGREEMENT, logical_date=DAY, expectations_dir=tmp_path)
    document = json.loads(path.read_text())
    derived = [e for e in document["expectations"] if e["meta"].get("derived")]
    assert derived and all(e["meta"]["dimension"] in (
        "accuracy", "validity", "reliability", "timeliness", "relevance", "completeness") for e in derived)
    judged_by_gx = {c.id for c in run_quality(clean()).checks if c.scope == "rows" or c.dimension == "relevance"}
    assert {e["meta"]["check"] for e in derived} == judged_by_gx
    assert [c.id for c in load_expectations(path, flow)] == ["accuracy.low_score"]
    # running with the exported file gives the same results as the hand-written file alone
    again = run_quality(clean(), expectations_dir=tmp_path)
    assert sum(c.id.startswith("accuracy.low_score") for c in again.checks) == 1


def test_cli_export_writes_the_sample_flow_suite(tmp_path):
    from transfers.cli import app

    shutil.copytree(ROOT / "config", tmp_path / "config")
    env = {"TRANSFERS_CONFIG_DIR": str(tmp_path / "config"), "TRANSFERS_HOME": str(tmp_path / "state")}
    result = CliRunner().invoke(app, ["expectations", "export", "mash-referrals.A", "--date", "2026-06-02"], env=env)
    assert result.exit_code == 0, result.output
    path = tmp_path / "expectations" / "mash-referrals" / "A.json"
    assert str(path) in result.output
    document = json.loads(path.read_text())
    assert document["name"] == "mash-referrals.A"
    assert any(e["meta"]["check"] == "accuracy.nhs_number.nhs_number" for e in document["expectations"])


def test_checked_in_suites_load_and_the_sample_data_passes_them():
    from transfers.agreement import load_config
    from transfers.devkit import synthetic
    from transfers.quality import check_quality

    config = load_config(ROOT / "config")
    files = sorted((ROOT / "expectations").glob("*/*.json"))
    assert files, "expectations/ should hold the sample flows' suites"
    for path in files:
        ref = config.flow(f"{path.parent.name}.{path.stem}")
        load_expectations(path, ref.flow)  # raises ConfigError naming the file if one is malformed
    ref = config.flow("mash-referrals.B")
    outcome = check_quality(
        iter([synthetic.ed_attendances(40, DAY)]), ref.flow, agreement_id="mash-referrals", logical_date=DAY,
        report_dir=None, expectations_dir=ROOT / "expectations",
    )
    shape = next(c for c in outcome.checks if c.id == "validity.attendance_id_shape")
    assert (shape.judged, shape.failing, shape.success) == (40, 0, True)
    assert outcome.blocked == []


# --------------------------------------------------------------------------- relevance in the suite (all six)

SIX = {"accuracy", "validity", "reliability", "timeliness", "relevance", "completeness"}


def test_the_exported_suite_carries_all_six_characteristics(tmp_path):
    flow = make_flow()
    path = export_suite(flow, agreement_id=AGREEMENT, logical_date=DAY, expectations_dir=tmp_path)
    derived = [e for e in json.loads(path.read_text())["expectations"] if e["meta"].get("derived")]
    assert {e["meta"]["dimension"] for e in derived} == SIX
    relevance = [e for e in derived if e["meta"]["dimension"] == "relevance"]
    assert {e["type"] for e in relevance} == {"expect_column_to_exist", "expect_table_columns_to_match_set"}
    (columns,) = [e for e in relevance if e["type"] == "expect_table_columns_to_match_set"]
    assert columns["kwargs"]["column_set"] == list(flow.fields)  # exact_match: true, GX's default, is not written
    assert sorted(e["kwargs"]["column"] for e in relevance if "column" in e["kwargs"]) == sorted(flow.fields)


def test_checked_in_suites_carry_all_six_characteristics():
    for path in sorted((ROOT / "expectations").glob("*/*.json")):
        derived = [e for e in json.loads(path.read_text())["expectations"] if e["meta"].get("derived")]
        assert {e["meta"]["dimension"] for e in derived} == SIX, path


def test_an_extra_column_is_reported_as_relevance_from_the_gx_result(monkeypatch):
    from great_expectations.expectations.core.expect_table_columns_to_match_set import ExpectTableColumnsToMatchSet

    from transfers.agreement import DIMENSIONS

    flow = make_flow({**dict.fromkeys(DIMENSIONS, "block"), "relevance": "warn"})
    data = clean()
    data["ethnicity"] = "not agreed"

    outcome = run_quality(data, flow)
    (check,) = [c for c in outcome.checks if c.id == "relevance.no_extra"]
    assert check.success is False and "unexpected column(s): ethnicity" in check.note
    assert outcome.dimensions["relevance"].outcome == "warn" and outcome.blocked == []

    # The verdict is GX's: a probe (not a stand-in for a real part) makes GX's column-set expectation
    # pass whatever it sees, and the extra column is then no longer reported.
    monkeypatch.setattr(ExpectTableColumnsToMatchSet, "_validate",
                        lambda self, metrics, runtime_configuration=None, execution_engine=None:
                        {"success": True, "result": {"observed_value": []}})
    (probed,) = [c for c in run_quality(data, flow).checks if c.id == "relevance.no_extra"]
    assert probed.success is True


def test_suite_every_expectation_carries_its_dimension():
    suite = build_suite(make_flow(), logical_date=DAY)
    assert suite
    assert all(e.meta["dimension"] in DIMENSIONS for e in suite)
    ids = [e.meta["check"] for e in suite]
    assert len(ids) == len(set(ids))
    kinds = {e.meta["check"].rsplit(".", 1)[0] if e.meta["check"].count(".") == 2 else e.meta["check"] for e in suite}
    assert {
        "accuracy.nhs_number",
        "accuracy.not_future",
        "accuracy.not_before",
        "validity.format",
        "validity.pattern",
        "validity.in",
        "validity.range",
        "validity.max_length",
        "reliability.record_key",
        "timeliness.recent",
        "completeness.required",
    } <= kinds
    required = {
        e.meta["check"]: e.mostly
        for e in build_suite(make_flow(required_nhs=0.95), logical_date=DAY)
        if e.meta["dimension"] == "completeness"
    }
    assert required["completeness.required.nhs_number"] == 0.95
    assert required["completeness.required.referral_id"] == 1.0
