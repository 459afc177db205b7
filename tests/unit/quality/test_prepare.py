"""The frame GX validates: derived columns computed for a whole batch agree with the rules value by value,
and GX reads Arrow-backed text exactly as it reads object text."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from tests.support.quality_flows import DAY, clean, make_flow
from transfers.quality.gxrun import _RESULT_FORMAT, _batch_definition, gx
from transfers.quality.prepare import _ARROW_SAFE, _Preparer
from transfers.quality.rules import _derived
from transfers.quality.suite import flow_checks
from transfers.rules import postcode_district

ODD_TEXT = [
    "S60 2AB", "s60 2ab", " S60 2AB ", "\u00a0S60 2AB\u2003", "S60\t2AB", "S60  2AB", "GIR 0AA", "gir0aa",
    "ſ60 2AB", "\u212a1 1AB", "Ｓ60 2AB", "S60 2AB\n", "", "   ", "\u3000", None, "R000001", "R00000١",
    "2026-02-30", "2026-02-28", "2026-2-28", "2026-02-28T10:00", "x" * 300, "é", "low", "LOW",
]


def preparer():
    flow = make_flow()
    return flow, _Preparer(flow, flow_checks(flow, agreement_id="a", logical_date=DAY))


def test_derived_columns_agree_with_the_rules_value_by_value():
    flow, prep = preparer()
    data = pd.DataFrame({name: pd.Series(ODD_TEXT, dtype=object) for name in flow.fields})
    frame = prep.prepare(data)
    blank = [v is None or not v.strip() for v in ODD_TEXT]
    cleaned = [None if b else v for v, b in zip(ODD_TEXT, blank, strict=True)]
    assert prep.nulls["postcode"] == sum(blank)
    # nullable flags: missing exactly where the value is
    assert frame[_derived("parsed", "date_of_birth")].isna().tolist() == blank
    expected_dates = []
    for v in cleaned:
        try:
            expected_dates.append(None if v is None else datetime.strptime(v, "%Y-%m-%d") if len(v) == 10 else None)
        except ValueError:
            expected_dates.append(None)
    parsed = frame[_derived("when", "date_of_birth")]
    assert [None if pd.isna(t) else t.to_pydatetime() for t in parsed] == expected_dates
    assert frame[_derived("parsed", "date_of_birth")].dropna().tolist() == [
        d is not None for d, v in zip(expected_dates, cleaned, strict=True) if v is not None
    ]


def test_postcode_districts_agree_with_the_scalar_rule_on_odd_text():
    from transfers.rules import postcode_districts

    got = postcode_districts(pd.Series(ODD_TEXT, dtype=object)).tolist()
    assert [None if pd.isna(g) else g for g in got] == [None if v is None else postcode_district(v) for v in ODD_TEXT]


def test_non_text_values_are_read_as_before():
    flow, prep = preparer()
    data = clean(4)
    data["score"] = pd.Series([3, 12, None, "  "], dtype=object)  # numbers from a typed source, and a blank
    frame = prep.prepare(data)
    assert frame["score"].tolist()[:2] == [3, 12] and frame["score"].isna().tolist() == [False, False, True, True]
    assert frame[_derived("number", "score")].tolist()[:2] == [3, 12]


@pytest.mark.parametrize(
    ("kind", "kwargs"),
    [
        ("ExpectColumnValuesToNotBeNull", {}),
        ("ExpectColumnValuesToBeInSet", {"value_set": ["low", "LOW", "é", ""]}),
        ("ExpectColumnValuesToMatchRegex", {"regex": r"(?i)\A(?:[a-z]+[0-9]*)\Z"}),
        ("ExpectColumnValuesToMatchRegex", {"regex": "^R[0-9]{6}$"}),
        ("ExpectColumnValueLengthsToBeBetween", {"min_value": 1, "max_value": 7}),
    ],
)
def test_gx_reads_arrow_text_as_it_reads_object_text(kind, kwargs):
    expectation = getattr(gx.expectations, kind)(column="v", **kwargs)
    assert expectation.expectation_type in _ARROW_SAFE
    suite = gx.ExpectationSuite(name=f"arrow-{kind}", expectations=[expectation])
    values = pd.Series(ODD_TEXT, dtype=object)

    def result(column: pd.Series) -> dict:
        frame = pd.DataFrame({"v": column, "other": range(len(column))})
        res = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format=_RESULT_FORMAT
        )
        (one,) = res.results
        assert not one.exception_info.get("raised_exception")
        return {k: one.result.get(k) for k in ("element_count", "missing_count", "unexpected_count",
                                                "unexpected_index_list")}

    assert result(values.astype("string[pyarrow]")) == result(values)
