"""The data owner's reports say what happened: all six characteristics and no record value in the
scorecard, its JSON or the run's summary; rows held back (every copy of a key), dry runs, empty extracts."""

from __future__ import annotations

import json
import stat

from tests.support.quality_flows import (
    BAD_NHS,
    BAD_POSTCODE,
    DEFECTS,
    FORENAME,
    OUT_OF_SET,
    QUARANTINE,
    N,
    assert_no_record_values,
    clean,
    html,
    make_flow,
    run,
)
from tests.support.quality_flows import run as run_quality
from transfers.agreement import DIMENSIONS

# --------------------------------------------------------------------------- rows held back (item 3)


def test_rows_held_back_count_every_copy_of_a_duplicated_key(tmp_path):
    first, second = clean().iloc[:6].copy(), clean().iloc[6:].copy()
    second.loc[second.index[2], "referral_id"] = first.iloc[0]["referral_id"]  # duplicate across batches
    second.loc[second.index[4], "nhs_number"] = BAD_NHS  # accuracy
    outcome = run_quality([first, second], make_flow(QUARANTINE), report_dir=tmp_path)

    assert len(outcome.quarantined_keys) == 2  # two record keys...
    assert outcome.held_back_rows == 3  # ...three rows: both copies of the duplicated key
    assert outcome.summary()["held_back_rows"] == 3
    assert json.loads(outcome.report_json.read_text())["held_back_rows"] == 3
    assert "<tr><th>Records held back</th><td>3</td></tr>" in html(outcome)
    assert "<strong>3 records held back</strong>" in html(outcome)


def test_a_quarantined_key_that_is_duplicated_holds_back_both_rows_even_when_duplicates_only_warn(tmp_path):
    data = clean()
    data.at[8, "referral_id"] = data.at[2, "referral_id"]
    data.at[2, "nhs_number"] = BAD_NHS  # the first copy fails accuracy (quarantine)
    flow = make_flow({**QUARANTINE, "reliability": "warn"})
    outcome = run_quality(data, flow, report_dir=tmp_path)
    assert outcome.quarantined_keys == {(data.at[2, "referral_id"],)}
    assert outcome.held_back_rows == 2  # the pipeline holds back every row with the key


# --------------------------------------------------------------------------- dry run (item 14)


def test_a_dry_run_scorecard_says_so_and_never_says_records_sent(tmp_path):
    data = clean()
    data["ethnicity"] = "not agreed"  # relevance: warn
    real = run_quality(data, make_flow(QUARANTINE), report_dir=tmp_path / "real")
    dry = run_quality(data, make_flow(QUARANTINE), report_dir=tmp_path / "dry", dry_run=True)

    assert "records sent" in html(real) and "Dry run" not in html(real)
    page = html(dry)
    assert "records sent" not in page and "Cleared to send" not in page
    assert "<strong>Dry run</strong>" in page and "Data quality report (dry run)" in page
    assert "records would be sent" in page and "Would be cleared to send" in page
    assert json.loads(dry.report_json.read_text())["dry_run"] is True
    assert "Rectification notice (dry run)" in dry.rectification_html.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- empty extract (item 14)


def test_an_empty_extract_is_not_a_request_to_correct_records(tmp_path):
    empty = clean().iloc[0:0]
    outcome = run_quality(empty, make_flow(), report_dir=tmp_path)

    assert outcome.blocked == ["completeness"]
    page = html(outcome)
    assert "correct the records" not in page
    assert "<strong>The extract was empty</strong>: no record was checked" in page
    assert "The transfer was blocked by:" in page and "Completeness" in page
    notice = outcome.rectification_html.read_text(encoding="utf-8")
    assert "Every record passed" not in notice and "The extract was empty" in notice
    # the summary `transfers check` and `transfers report quality` print says so too
    from transfers.cli.quality import _verdict
    from transfers.quality import report_document

    assert _verdict(report_document(outcome, make_flow())).startswith("the extract was empty (no record to correct")


# --------------------------------------------------------------------------- what leaves the run


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
    assert_no_record_values(outcome, report_dir)
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
