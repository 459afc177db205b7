"""The checks issue 3 added: cross-field order, postcode districts, email, `mostly`, columns, drift."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.support.quality_flows import DAY, N, clean, make_flow
from tests.support.quality_flows import run as run_quality
from transfers.agreement import Flow
from transfers.quality.rectify import read_notice


def flow_with(*, fields: dict | None = None, quality: dict | None = None, **base) -> Flow:
    data = make_flow(**base).model_dump(by_alias=True, exclude_none=True)
    for name, checks in (fields or {}).items():
        data["fields"].setdefault(name, {"share": "keep", "checks": {}})
        data["fields"][name]["checks"].update(checks)
    data["quality"].update(quality or {})
    return Flow.model_validate(data)


def result(outcome, check_id: str):
    return next(c for c in outcome.checks if c.id == check_id)


def test_cross_field_order_birth_before_referral():
    flow = flow_with(fields={"referral_date": {"after": "date_of_birth"}})
    data = clean()
    # a birth after the referral; the date itself is plausible (not in the future, after the floor)
    data.at[5, "date_of_birth"] = (DAY - timedelta(days=1)).isoformat()
    data.at[5, "referral_date"] = (DAY - timedelta(days=2)).isoformat()
    data.at[7, "date_of_birth"] = None  # missing: completeness's to report, not an order failure
    outcome = run_quality(data, flow)
    order = result(outcome, "accuracy.order.referral_date")
    assert (order.judged, order.failing, order.success) == (N - 1, 1, False)
    assert outcome.dimensions["accuracy"].failing_rows == 1
    assert run_quality(clean(), flow).dimensions["accuracy"].outcome == "pass"


def test_order_names_an_agreed_field():
    with pytest.raises(ValueError, match="'born' is not one of the flow's fields"):
        flow_with(fields={"referral_date": {"after": "born"}})


def test_postcode_district_in_reference_list():
    flow = flow_with(fields={"postcode": {"districts": ["s60", "S65"]}})
    data = clean()
    data.at[4, "postcode"] = "S1 2AB"  # a real postcode shape, outside the reference list
    data.at[6, "postcode"] = "not a postcode"  # validity's failure, not a second one for accuracy
    outcome = run_quality(data, flow)
    district = result(outcome, "accuracy.district.postcode")
    assert (district.failing, district.success) == (1, False)
    assert result(outcome, "validity.format.postcode").failing == 1
    assert run_quality(clean(), flow).dimensions["accuracy"].outcome == "pass"


def test_districts_must_be_districts():
    with pytest.raises(ValueError, match="postcode districts"):
        flow_with(fields={"postcode": {"districts": ["S60 1AB"]}})


def test_email_format():
    flow = flow_with(fields={"contact": {"format": "email"}})
    data = clean()
    data["contact"] = ["someone@example.org"] * N
    data.at[2, "contact"] = "someone at example.org"
    data.at[3, "contact"] = "a@b"
    outcome = run_quality(data, flow)
    assert result(outcome, "validity.format.contact").failing == 2
    assert outcome.dimensions["validity"].failing_rows == 2


def test_mostly_tolerates_a_share_of_failures_per_field():
    flow = flow_with(fields={"postcode": {"mostly": 0.85}})
    one = clean()
    one.at[4, "postcode"] = "nope"  # 1 of 11 present values fails: 91% pass
    passed = run_quality(one, flow)
    check = result(passed, "validity.format.postcode")
    assert (check.failing, check.success) == (1, True)
    assert passed.dimensions["validity"].outcome == "pass"
    assert "at least 85% of records" in check.description
    two = one.copy()
    two.at[5, "postcode"] = "nope"  # 2 of 11: 82% pass
    assert result(run_quality(two, flow), "validity.format.postcode").success is False
    # without the tolerance one failure fails
    assert result(run_quality(one), "validity.format.postcode").success is False


def test_empty_extract_is_flagged_by_completeness():
    outcome = run_quality(clean().iloc[0:0])
    assert result(outcome, "completeness.rows").success is False
    assert outcome.dimensions["completeness"].outcome == "block"


def test_unexpected_columns_reported_and_missing_agreed_columns_fail():
    data = clean().drop(columns=["category"])
    data["shoe_size"] = "9"
    outcome = run_quality(data, make_flow({"relevance": "warn"}))
    assert result(outcome, "relevance.present.category").success is False
    extra = result(outcome, "relevance.no_extra")
    assert extra.success is False and "shoe_size" in extra.note
    assert outcome.dimensions["relevance"].outcome == "warn"


# --------------------------------------------------------------------------- drift against history


def summaries(count: int, rows: int, nulls: dict[str, int] | None = None) -> list[dict]:
    return [
        {"logical_date": (DAY - timedelta(days=count - i)).isoformat(), "rows": rows, "nulls": nulls or {}}
        for i in range(count)
    ]


DRIFT = {"row_count_drift": 0.5, "null_rate_drift": 0.2, "min_history": 3}


def test_no_history_yet_is_said_not_passed_quietly():
    flow = flow_with(quality=DRIFT)
    outcome = run_quality(clean(), flow, history=summaries(2, N))
    check = result(outcome, "reliability.row_count")
    assert check.success is None and check.note.startswith("no history yet: 2 earlier run(s)")
    assert result(outcome, "reliability.null_rate.postcode").success is None
    assert outcome.dimensions["reliability"].outcome == "pass"


def test_row_count_drift_against_the_median_of_recent_runs():
    flow = flow_with(quality=DRIFT)
    steady = run_quality(clean(), flow, history=summaries(5, N + 2))
    assert result(steady, "reliability.row_count").success is True
    dropped = run_quality(clean(), flow, history=summaries(5, 4 * N))
    check = result(dropped, "reliability.row_count")
    assert check.success is False and f"{N} rows against a median of {4 * N}" in check.note
    assert dropped.blocked == ["reliability"]


def test_a_rerun_of_the_same_day_is_not_its_own_history():
    flow = flow_with(quality=DRIFT)
    history = [*summaries(2, N), {"logical_date": DAY.isoformat(), "rows": N, "nulls": {}}]
    assert result(run_quality(clean(), flow, history=history), "reliability.row_count").success is None


def test_null_rate_drift_per_field():
    flow = flow_with(quality=DRIFT)
    history = summaries(4, 100, {"postcode": 5, "category": 10})
    data = clean()
    data.loc[: N // 2, "postcode"] = None  # 7 of 12 missing against 5% before
    outcome = run_quality(data, flow, history=history)
    check = result(outcome, "reliability.null_rate.postcode")
    assert check.success is False and "58.3% of records miss postcode, against 5.0%" in check.note
    assert result(outcome, "reliability.null_rate.category").success is True  # 1 of 12 against 10%
    assert outcome.summary()["nulls"]["postcode"] == N // 2 + 1


# --------------------------------------------------------------------------- the rectification notice


def test_rectification_lists_exactly_the_failing_records(tmp_path):
    data = clean()
    data.at[3, "nhs_number"] = "9990001236"  # bad check digit
    data.at[5, "postcode"] = "ZZ99 QQQ"  # not a postcode
    data.at[6, "referral_id"] = "R000002"  # duplicate key (the record key: one check, not two)
    data.at[8, "risk_level"] = None  # missing mandatory
    outcome = run_quality(data, report_dir=tmp_path)
    rows = read_notice(outcome.rectification_csv)
    got = {(r["record_key"], r["field"], r["characteristic"], r["check"]) for r in rows}
    assert got == {
        ("R000004", "nhs_number", "accuracy", "accuracy.nhs_number.nhs_number"),
        ("R000006", "postcode", "validity", "validity.format.postcode"),
        ("R000002", "referral_id", "reliability", "reliability.record_key"),
        ("R000009", "risk_level", "completeness", "completeness.required.risk_level"),
    }
    # every copy of the duplicated key, each by its row: the first (row 2) and the later (row 7)
    assert sorted(r["row"] for r in rows if r["record_key"] == "R000002") == ["2", "7"]
    assert outcome.records_to_fix == 5
    html = outcome.rectification_html.read_text(encoding="utf-8")
    for key in ("R000004", "R000006", "R000002", "R000009"):
        assert key in html
    assert "ZZ99" not in html and "9990001236" not in html  # the values found are not repeated
    clean_run = run_quality(clean(), report_dir=tmp_path / "clean")
    assert read_notice(clean_run.rectification_csv) == []
    assert "No record needs fixing" in clean_run.rectification_html.read_text(encoding="utf-8")


def test_rectification_streams_rows_across_batches(tmp_path):
    data = clean()
    data.at[10, "nhs_number"] = "9990001236"
    outcome = run_quality([data.iloc[:6], data.iloc[6:]], report_dir=tmp_path)
    (row,) = read_notice(outcome.rectification_csv)
    assert (row["record_key"], row["row"]) == ("R000011", "11")
    assert not list(tmp_path.glob(".*.tmp"))


def test_no_report_dir_means_no_notice():
    outcome = run_quality(pd.DataFrame(clean()))
    assert outcome.rectification_csv is None and outcome.rectification_html is None


def test_vectorised_modulus_11_agrees_with_the_rule_value_by_value():
    from transfers.devkit import synthetic
    from transfers.quality import nhs_number_valid
    from transfers.quality.prepare import nhs_numbers_valid

    values = list(synthetic.referrals(300, DAY)["nhs_number"]) + [
        "9990001236", "999 000 1235", "1234567890", "123456789", "12345678901", "", "   ", "abcdefghij",
        "９９９０００１２３５", "999000123X", "0000000000", "4010232137", None,
    ]
    got = nhs_numbers_valid(pd.Series(values, dtype=object)).tolist()
    assert got == [None if v is None else nhs_number_valid(v) for v in values]
    assert any(got) and not all(v for v in got if v is not None)


def test_rectification_html_escapes_record_keys(tmp_path):
    data = clean()
    data.at[2, "referral_id"] = "<script>alert(1)</script>"  # fails the pattern: listed by this key
    outcome = run_quality(data, report_dir=tmp_path)
    (row,) = read_notice(outcome.rectification_csv)
    assert row["record_key"] == "<script>alert(1)</script>" and row["check"] == "validity.pattern.referral_id"
    html = outcome.rectification_html.read_text(encoding="utf-8")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
