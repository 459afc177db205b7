"""The quality step: each defect caught by the right characteristic, with the right counts, and no
record value in anything that leaves the run (summary, JSON and HTML reports)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from transfers.agreement import DIMENSIONS, Flow, load_config
from transfers.devkit import synthetic
from transfers.quality import QualityOutcome, build_suite, check_quality, nhs_number_valid

ROOT = Path(__file__).resolve().parents[3]
DAY = date(2026, 6, 2)
N = 12

# Seeded defect values, each distinctive, so a leak into a report can be searched for.
BAD_NHS = "9990001236"  # nine digits of a valid number with the wrong check digit (see test below)
BAD_POSTCODE = "ZZ99 QQQ"
OUT_OF_SET = "catastrophic"
EXTRA_VALUE = "Zebedee-Extra-Value"
FORENAME = "Quillon"


def mod11(nine: str) -> int | None:
    """The test's own Modulus 11 (not the code under test's)."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(nine))
    check = 11 - total % 11
    return 0 if check == 11 else (None if check == 10 else check)


def valid_nhs(seed: int) -> str:
    n = seed * 7
    while True:
        nine = f"999{n:06d}"
        check = mod11(nine)
        if check is not None:
            return nine + str(check)
        n += 1


def make_flow(
    on_failure: dict[str, str] | None = None, *, max_age: str | None = "P3D", required_nhs: bool | float = True
) -> Flow:
    return Flow.model_validate(
        {
            "id": "T",
            "name": "Test referrals",
            "from": "sender",
            "to": [{"partner": "receiver", "sftp": "rx_sftp", "path": "in", "pgp_fingerprint": "AB" * 20}],
            "source": {"kind": "csv", "connection": "src", "path": "x.csv"},
            "subject": "nhs_number",
            "record_key": "referral_id",
            "fields": {
                "referral_id": {
                    "share": "keep",
                    "checks": {"required": True, "unique": True, "pattern": "^R[0-9]{6}$"},
                },
                "nhs_number": {"share": "pseudonymise", "checks": {"required": required_nhs, "nhs_number": True}},
                "forename": {"share": "drop"},
                "date_of_birth": {
                    "share": "generalise",
                    "to": "year",
                    "checks": {"required": True, "format": "date", "not_future": True, "not_before": "2000-01-01"},
                },
                "postcode": {"share": "generalise", "to": "district", "checks": {"format": "postcode"}},
                "referral_date": {
                    "share": "keep",
                    "checks": {"required": True, "format": "date", "not_future": True, "recent": "P30D"},
                },
                "risk_level": {"share": "keep", "checks": {"required": True, "in": ["low", "medium", "high"]}},
                "category": {"share": "keep", "checks": {"in": ["neglect", "physical"]}},
                "score": {"share": "keep", "checks": {"format": "integer", "min": 0, "max": 10, "max_length": 2}},
            },
            "quality": {"on_failure": on_failure or dict.fromkeys(DIMENSIONS, "block"), "max_age": max_age},
            "retention": {"staging": "P7D", "remote": "P14D"},
        }
    )


def clean(n: int = N) -> pd.DataFrame:
    """A data set that passes all six; optional fields have some nulls (nulls fail only completeness)."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "referral_id": f"R{i + 1:06d}",
                "nhs_number": valid_nhs(i + 1)
                if i % 2
                else f"{valid_nhs(i + 1)[:3]} {valid_nhs(i + 1)[3:6]} {valid_nhs(i + 1)[6:]}",
                "forename": FORENAME,
                "date_of_birth": (date(2010, 1, 1) + timedelta(days=97 * i)).isoformat(),
                "postcode": None if i == 0 else ("s60 1ab" if i == 1 else "S65 2DF"),
                "referral_date": (DAY - timedelta(days=i % 3)).isoformat(),
                "risk_level": ["low", "medium", "high"][i % 3],
                "category": None if i == 2 else ["neglect", "physical"][i % 2],
                "score": None if i == 3 else str(i % 11),
            }
        )
    return pd.DataFrame(rows, dtype=object)


def run(
    frames: pd.DataFrame | list[pd.DataFrame], flow: Flow | None = None, report_dir: Path | None = None, **kwargs
) -> QualityOutcome:
    frames = frames if isinstance(frames, list) else [frames]
    return check_quality(
        iter(frames),
        flow or make_flow(),
        agreement_id="test-agreement",
        logical_date=DAY,
        report_dir=report_dir,
        **kwargs,
    )


def failing(outcome: QualityOutcome) -> dict[str, tuple[int, int]]:
    """{dimension: (checks failed, records failing)} for the dimensions that failed."""
    return {d: (r.failed, r.failing_rows) for d, r in outcome.dimensions.items() if r.failed}


# --------------------------------------------------------------------------- the Modulus 11 rule


def test_nhs_number_modulus_11():
    assert nhs_number_valid("943 476 5919")  # NHS Digital's published example
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")
    assert not nhs_number_valid("943476591")
    assert not nhs_number_valid("94347659190")
    assert not nhs_number_valid("943-476-5919")
    assert not nhs_number_valid("94347659l9")
    assert not nhs_number_valid("٩٤٣٤٧٦٥٩١٩")  # digits, but not ASCII ones
    assert mod11(BAD_NHS[:9]) is not None and str(mod11(BAD_NHS[:9])) != BAD_NHS[9]
    assert not nhs_number_valid(BAD_NHS)
    ten = next(f"{n:09d}" for n in range(1, 10_000) if mod11(f"{n:09d}") is None)  # check digit would be 10
    assert not any(nhs_number_valid(ten + d) for d in "0123456789")
    eleven = next(f"{n:09d}" for n in range(1, 10_000) if mod11(f"{n:09d}") == 0)  # 11 -> 0
    assert nhs_number_valid(eleven + "0")


# --------------------------------------------------------------------------- the suite


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


def _set(row: int, column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        df.at[row, column] = value
        return df

    return apply


def _all(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        df[column] = value
        return df

    return apply


def _several(*changes: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        for change in changes:
            df = change(df)
        return df

    return apply


DEFECTS = {
    "invalid check digit": (_set(3, "nhs_number", BAD_NHS), {"accuracy": (1, 1)}),
    "future referral date": (_set(4, "referral_date", (DAY + timedelta(days=5)).isoformat()), {"accuracy": (1, 1)}),
    "birth before the floor": (_set(4, "date_of_birth", "1999-12-31"), {"accuracy": (1, 1)}),
    "bad postcode": (_set(5, "postcode", BAD_POSTCODE), {"validity": (1, 1)}),
    "impossible date": (_set(5, "date_of_birth", "2012-02-30"), {"validity": (1, 1)}),
    "pattern broken": (_set(5, "referral_id", "X000006"), {"validity": (1, 1)}),
    "out-of-set value": (_set(11, "risk_level", OUT_OF_SET), {"validity": (1, 1)}),
    "number out of range": (_set(6, "score", "11"), {"validity": (1, 1)}),
    "not a number, too long": (_set(6, "score", "abc"), {"validity": (2, 1)}),  # one record, two checks
    "duplicate key": (_set(6, "referral_id", "R000002"), {"reliability": (1, 2)}),  # both copies fail
    "stale records": (_set(7, "referral_date", (DAY - timedelta(days=60)).isoformat()), {"timeliness": (1, 1)}),
    "stale extract": (_all("referral_date", (DAY - timedelta(days=10)).isoformat()), {"timeliness": (1, 0)}),
    "extra column": (_all("ethnicity", EXTRA_VALUE), {"relevance": (1, 0)}),
    "missing agreed column": (lambda df: df.drop(columns=["category"]), {"relevance": (1, 0)}),
    "missing mandatory values": (
        _several(_set(2, "risk_level", None), _set(9, "risk_level", float("nan")), _set(10, "risk_level", "   ")),
        {"completeness": (1, 3)},
    ),
    "missing mandatory column": (
        lambda df: df.drop(columns=["risk_level"]),
        {"relevance": (1, 0), "completeness": (1, N)},
    ),
    "empty extract": (lambda df: df.iloc[0:0], {"completeness": (1, 0)}),
}


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
    _assert_no_record_values(outcome, tmp_path)


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
    extra = run(_all("ethnicity", EXTRA_VALUE)(clean()), make_flow({"relevance": "warn"}))
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


# --------------------------------------------------------------------------- what leaves the run


def _assert_no_record_values(outcome: QualityOutcome, report_dir: Path) -> None:
    html = (report_dir / "quality_T_2026-06-02.html").read_text(encoding="utf-8")
    report_json = (report_dir / "quality_T_2026-06-02.json").read_text(encoding="utf-8")
    summary = json.dumps(outcome.summary())
    seeded = [
        BAD_NHS,
        BAD_POSTCODE,
        OUT_OF_SET,
        EXTRA_VALUE,
        FORENAME,
        "R000002",
        "R000004",
        valid_nhs(2),
        (DAY - timedelta(days=60)).isoformat(),
    ]
    for text in (html, report_json, summary):
        for value in seeded:
            assert value not in text


def test_report_is_self_contained_names_all_six_and_holds_no_record_values(tmp_path):
    report_dir = tmp_path / "reports" / "test-agreement" / "T"
    df = clean()
    df.at[3, "nhs_number"] = BAD_NHS
    df.at[5, "postcode"] = BAD_POSTCODE
    df.at[11, "risk_level"] = OUT_OF_SET
    df.at[6, "referral_id"] = "R000002"
    outcome = run(df, report_dir=report_dir)
    assert outcome.report_html == report_dir / "quality_T_2026-06-02.html"
    assert outcome.report_json == report_dir / "quality_T_2026-06-02.json"
    html = outcome.report_html.read_text(encoding="utf-8")
    positions = [html.find(f'<section id="{d}">') for d in DIMENSIONS]
    assert -1 not in positions and positions == sorted(positions)  # one section each, in the protocol's order
    for name in ("Accuracy", "Validity", "Reliability", "Timeliness", "Relevance", "Completeness"):
        assert name in html
    lowered = html.lower()
    assert "http://" not in lowered and "https://" not in lowered and "<script" not in lowered
    assert "src=" not in lowered and "@import" not in lowered
    assert "test-agreement" in html and "2026-06-02" in html and "is a valid NHS number" in html
    _assert_no_record_values(outcome, report_dir)
    doc = json.loads(outcome.report_json.read_text(encoding="utf-8"))
    assert list(doc["dimensions"]) == list(DIMENSIONS)
    assert doc["dimensions"]["accuracy"]["failing_rows"] == 1
    assert stat.S_IMODE(report_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(outcome.report_html.stat().st_mode) == 0o600
    assert stat.S_IMODE(outcome.report_json.stat().st_mode) == 0o600
    run(clean(), report_dir=report_dir)  # a re-run replaces the report whole, leaving no temporary file
    assert sorted(p.name for p in report_dir.iterdir()) == [
        "quality_T_2026-06-02.html",
        "quality_T_2026-06-02.json",
        "rectification_T_2026-06-02.csv",
        "rectification_T_2026-06-02.html",
    ]
    assert "All six characteristics passed" in outcome.report_html.read_text(encoding="utf-8")


def test_report_shows_the_trend_of_earlier_runs(tmp_path):
    earlier = run(DEFECTS["bad postcode"][0](clean())).summary()
    earlier["logical_date"] = "2026-05-31"
    hostile = {
        "logical_date": "<script>alert(1)</script>",
        "rows": "lots",
        "dimensions": {"validity": {"failing_rows": "<b>9</b>", "outcome": "<i>x</i>"}},
    }
    outcome = run(clean(), report_dir=tmp_path, history=[hostile, earlier])
    html = outcome.report_html.read_text(encoding="utf-8")
    assert "Recent runs" in html and "2026-05-31" in html and "(this run)" in html
    trend = json.loads(outcome.report_json.read_text(encoding="utf-8"))["trend"]
    assert [row["logical_date"] for row in trend] == ["?", "2026-05-31", "2026-06-02"]
    assert trend[1]["cells"]["validity"] == {"failing": 1, "outcome": "block"} and trend[0]["rows"] is None
    assert "<script" not in html.lower() and "lots" not in html and "<b>9" not in html and "<i>x" not in html
    first = run(clean(), report_dir=tmp_path / "again").report_html.read_text(encoding="utf-8")
    assert "No earlier run of this flow is recorded yet" in first


def test_summary_is_small_json_counts_only():
    outcome = run(
        DEFECTS["invalid check digit"][0](clean()),
        make_flow({**dict.fromkeys(DIMENSIONS, "block"), "accuracy": "quarantine"}),
    )
    summary = outcome.summary()
    text = json.dumps(summary)
    assert len(text) < 4000
    assert BAD_NHS not in text and "R000004" not in text
    assert summary["rows"] == N and summary["quarantined"] == 1 and summary["blocked"] == []
    assert list(summary["dimensions"]) == list(DIMENSIONS)
    assert summary["dimensions"]["accuracy"] == {
        "checks": 4,
        "passed": 3,
        "failed": 1,
        "failing_rows": 1,
        "policy": "quarantine",
        "outcome": "quarantine",
    }


def test_headerless_csv_column_names_are_not_shown(tmp_path):
    # A CSV read without its header row makes the first record the column names.
    df = clean()
    df.columns = [str(v) for v in df.iloc[0].tolist()[:-1]] + ["x"]
    outcome = run(df.iloc[1:], report_dir=tmp_path)
    notes = " ".join(outcome.dimensions["relevance"].notes)
    assert "names are not shown" in notes
    html = outcome.report_html.read_text(encoding="utf-8")
    assert FORENAME not in notes and FORENAME not in html and "R000001" not in html


def test_gx_stays_quiet(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(clean())
    assert list(tmp_path.iterdir()) == []  # no gx/ project, no Data Docs
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"
