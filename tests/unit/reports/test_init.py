"""The quality scorecard's trend (``transfers/reports/__init__.py``): each logical date once, with its
latest run, in the table and in the report's JSON."""

from __future__ import annotations

import json
from datetime import date, timedelta

from tests.support.quality_flows import DAY, clean, html, make_flow
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
