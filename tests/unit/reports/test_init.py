"""The quality scorecard (``transfers/reports/__init__.py``): its trend has each logical date once, with its
latest run, in the table, the charts and the report's JSON; its headline says the outcome in five seconds."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import pytest

from tests.support.quality_flows import BAD_NHS, BAD_POSTCODE, DAY, QUARANTINE, clean, html, make_flow, set_all, set_at
from tests.support.quality_flows import run as run_quality
from transfers.agreement import DIMENSIONS
from transfers.reports import trend_rows


def summary(day: date, rows: int) -> dict:
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


# --------------------------------------------------------------------------- the headline and the trend charts


def headline_of(page: str) -> str:
    """The headline's words as a reader sees them (tags dropped)."""
    found = re.search(r'<p class="headline (\w+)" id="headline">(.*?)</p>', page, re.S)
    assert found, "no headline"
    return found.group(1) + ": " + re.sub(r"<[^>]+>", "", found.group(2))


@pytest.mark.parametrize(("change", "on_failure", "dry", "expected"), [
    (None, None, False, "pass: ✓Passed 12 records checked, all cleared to send; all six characteristics passed"),
    (set_at(3, "nhs_number", BAD_NHS), QUARANTINE, False,
     "quarantine: ⚠Held back 1 of 12 records held back, 11 cleared to send; worst: Accuracy, 1 record failing (8.3%)"),
    (set_at(3, "nhs_number", BAD_NHS), QUARANTINE, True,
     "quarantine: ⚠Dry run: held back 1 of 12 records would be held back, 11 would be cleared to send; "
     "worst: Accuracy, 1 record failing (8.3%)"),
    (set_at(5, "postcode", BAD_POSTCODE), None, False,
     "block: ✕Blocked 12 records checked, nothing was sent; worst: Validity, 1 record failing (8.3%)"),
    (set_all("ethnicity", "x"), {**QUARANTINE, "relevance": "warn"}, False,
     "warn: ⚠Passed with warnings 12 records checked, all cleared to send; worst: Relevance, 1 check failed"),
    (lambda df: df.iloc[0:0], None, False,
     "block: ✕Blocked the extract was empty (0 records), nothing was sent; worst: Completeness, 1 check failed"),
])
def test_the_headline_says_the_outcome_in_words_the_records_and_the_worst_characteristic(
        tmp_path, change, on_failure, dry, expected):
    data = change(clean()) if change else clean()
    outcome = run_quality(data, make_flow(on_failure), report_dir=tmp_path, dry_run=dry)
    page = html(outcome)
    assert headline_of(page) == expected
    assert page.index('id="headline"') < page.index('class="facts"')  # the first thing under the title


def test_the_scorecard_draws_the_trend_with_this_runs_figures(tmp_path):
    history = [summary(DAY - timedelta(days=2), 10), summary(DAY - timedelta(days=1), 11)]
    history[1]["dimensions"]["validity"]["failing_rows"] = 2
    outcome = run_quality(set_at(3, "nhs_number", BAD_NHS)(clean()), make_flow(QUARANTINE), report_dir=tmp_path,
                          history=history)
    page = html(outcome)
    days = [(DAY - timedelta(days=k)).isoformat() for k in (2, 1, 0)]
    assert (f'<desc id="trend-records-desc">Records checked per run: {days[0]}: 10; {days[1]}: 11; '
            f"{days[2]}: 12.</desc>") in page
    assert f"Accuracy: share of records failing per run: {days[0]}: 0%; {days[1]}: 0%; {days[2]}: 8.3%." in page
    assert f"Validity: share of records failing per run: {days[0]}: 0%; {days[1]}: 18.2%; {days[2]}: 0%." in page
    lowered = page.lower()
    assert page.count('<svg class="chart"') == 7 and "<script" not in lowered
    assert "http://" not in lowered and "https://" not in lowered
    # the charts come first, the exact table after them
    assert page.index('id="trend-records"') < page.index(f"<td>{days[2]} (this run)</td>")


def test_a_first_run_has_no_chart_and_its_scorecard_points_to_none(tmp_path):
    outcome = run_quality(clean(), make_flow(), report_dir=tmp_path, history=[])
    page = html(outcome)
    assert "No earlier run of this flow is recorded yet" in page
    assert '<svg class="chart"' not in page and 'class="charts"' not in page  # no empty chart group either
    assert "charts" not in page.split('id="trend"', 1)[1].split("</table>", 1)[0]  # nor words about charts
