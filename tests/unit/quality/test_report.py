"""The data owner's reports say what happened: rows held back (every copy of a key), dry runs, empty
extracts, re-runs in the trend, and a rectification notice grouped by record."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.unit.quality.test_run import BAD_NHS, BAD_POSTCODE, DAY, DIMENSIONS, clean, make_flow
from tests.unit.quality.test_run import run as run_quality
from transfers.quality.rectify import read_notice
from transfers.reports import trend_rows

QUARANTINE = {**dict.fromkeys(DIMENSIONS, "block"), "accuracy": "quarantine", "reliability": "quarantine",
              "relevance": "warn"}


def html(outcome) -> str:  # noqa: ANN001
    return outcome.report_html.read_text(encoding="utf-8")


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


# --------------------------------------------------------------------------- the notice (item 14)


def test_notice_groups_a_records_problems_and_lists_every_copy_of_a_duplicated_key(tmp_path):
    first, second = clean().iloc[:6].copy(), clean().iloc[6:].copy()
    second.loc[second.index[1], "referral_id"] = first.iloc[3]["referral_id"]  # row 8 repeats row 4's key
    first.loc[first.index[3], "nhs_number"] = BAD_NHS  # row 4 also fails two more checks
    first.loc[first.index[3], "postcode"] = BAD_POSTCODE
    first.loc[first.index[1], "postcode"] = BAD_POSTCODE  # row 2, between them in check order
    outcome = run_quality([first, second], make_flow(QUARANTINE), report_dir=tmp_path)

    lines = read_notice(outcome.rectification_csv)
    key = first.iloc[3]["referral_id"]
    assert [(r["row"], r["check"]) for r in lines if r["record_key"] == key] == [
        ("4", "accuracy.nhs_number.nhs_number"),
        ("4", "validity.format.postcode"),
        ("4", "reliability.record_key"),
        ("8", "reliability.record_key"),
    ]
    assert outcome.records_to_fix == 3  # rows 2, 4 and 8
    page = outcome.rectification_html.read_text(encoding="utf-8")
    # one entry per record: its key and row once, its problems beneath
    assert page.count(f"<td rowspan=\"3\">{key}</td>") == 1 and page.count(f"<td rowspan=\"1\">{key}</td>") == 1
    assert page.index('<td class="n" rowspan="1">2</td>') < page.index('<td class="n" rowspan="3">4</td>') \
        < page.index('<td class="n" rowspan="1">8</td>')


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


# --------------------------------------------------------------------------- trend (item 14)


def summary(day, rows: int) -> dict:  # noqa: ANN001
    return {"logical_date": day.isoformat(), "rows": rows,
            "dimensions": {d: {"failing_rows": 0, "outcome": "pass"} for d in DIMENSIONS}}


def test_a_rerun_date_appears_once_in_the_trend_with_its_latest_run():
    d1, d2, d3 = (DAY - timedelta(days=k) for k in (3, 2, 1))
    history = [summary(d1, 10), summary(d2, 11), summary(d2, 12), summary(d3, 13), summary(DAY, 5)]
    rows = trend_rows(history, summary(DAY, 14))  # this run re-runs DAY
    assert [(r["logical_date"], r["rows"], r["current"]) for r in rows] == [
        (d1.isoformat(), 10, False), (d2.isoformat(), 12, False), (d3.isoformat(), 13, False),
        (DAY.isoformat(), 14, True),
    ]


def test_the_scorecard_trend_shows_each_date_once(tmp_path):
    history = [summary(DAY - timedelta(days=1), 12), summary(DAY - timedelta(days=1), 12), summary(DAY, 12)]
    outcome = run_quality(clean(), make_flow(), report_dir=tmp_path, history=history)
    page = html(outcome)
    assert page.count(f"<td>{(DAY - timedelta(days=1)).isoformat()}</td>") == 1
    assert page.count(f"<td>{DAY.isoformat()} (this run)</td>") == 1
    assert page.count(f"<td>{DAY.isoformat()}</td>") == 1  # the header's date; the earlier run of it is not shown
    assert len(json.loads(outcome.report_json.read_text())["trend"]) == 2

