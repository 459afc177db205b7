"""Which charts each report shows (``transfers/reports/figures.py``): the scorecard's trend (records per run,
failing share per characteristic on one scale) and the IG report's records disclosed per month."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from transfers.agreement import DIMENSIONS
from transfers.reports import CHARACTERISTICS
from transfers.reports.figures import MAX_SERIES, disclosures_per_month, quality_trend

NAMES = {d: name for d, (name, _) in CHARACTERISTICS.items()}


def trend_row(day: str, rows: int | None, failing: dict[str, int | None], current: bool = False) -> dict:
    return {
        "logical_date": day,
        "rows": rows,
        "current": current,
        "cells": {d: {"failing": failing.get(d, 0), "outcome": "pass"} for d in DIMENSIONS},
    }


def desc(svg: str) -> str:
    return str(next(ET.fromstring(svg).iter("desc")).text)


def test_the_trend_is_records_per_run_then_the_six_shares_in_the_protocols_order():
    trend = [
        trend_row("2026-05-31", 10, {"accuracy": 1}),
        trend_row("2026-06-01", None, {}),
        trend_row("2026-06-02", 8, {"accuracy": 2, "completeness": 8}, current=True),
    ]
    figures = quality_trend(trend, NAMES)
    assert [ET.fromstring(f.svg).get("id") for f in figures] == ["trend-records", *(f"trend-{d}" for d in DIMENSIONS)]
    assert desc(figures[0].svg) == "Records checked per run: 2026-05-31: 10; 2026-06-01: no figure; 2026-06-02: 8."
    assert figures[0].caption == "Records checked per run: 8 in this run"
    assert desc(figures[1].svg) == (
        "Accuracy: share of records failing per run: 2026-05-31: 10%; 2026-06-01: no figure; 2026-06-02: 25%."
    )
    assert figures[1].caption == "Accuracy: 25% failing in this run"
    assert figures[6].caption == "Completeness: 100% failing in this run"
    # one scale for all six: every share chart's axis tops out at the largest share (100%), so heights compare
    for f in figures[1:]:
        assert "100%" in [t.text for t in ET.fromstring(f.svg).iter("text")]


def test_a_first_run_or_no_run_has_no_trend_chart():
    assert quality_trend([trend_row("2026-06-02", 12, {}, current=True)], NAMES) == []  # nothing to compare with
    assert quality_trend([], NAMES) == []


def group(flow: str, recipient: str, period: str, rows: int) -> dict:
    return {
        "agreement": "mash-referrals",
        "flow": flow,
        "recipient": recipient,
        "recipient_name": recipient.title(),
        "period": period,
        "rows": rows,
    }


def test_disclosures_per_month_one_chart_per_flow_and_recipient_every_month_of_the_period():
    doc = {
        "from": "2026-04-01",
        "to": "2026-07-31",
        "disclosures": [
            group("mash-referrals.A", "syp", "2026-04", 12),
            group("mash-referrals.A", "syp", "2026-06", 30),
            group("mash-referrals.B", "rcs", "2026-06", 7),
        ],
    }
    figures = disclosures_per_month(doc)
    assert [f.caption for f in figures] == [
        "mash-referrals.A to Syp: 42 records disclosed",
        "mash-referrals.B to Rcs: 7 records disclosed",
    ]
    assert desc(figures[0].svg) == (
        "Records disclosed per month: mash-referrals.A to Syp: 2026-04: 12; 2026-05: 0; 2026-06: 30; 2026-07: 0."
    )
    assert desc(figures[1].svg).endswith("2026-04: 0; 2026-05: 0; 2026-06: 7; 2026-07: 0.")
    # one scale: B's 7 records is a short bar beside A's 30, not a full-height one
    heights = [max(float(r.get("height", "")) for r in ET.fromstring(f.svg).iter("rect")) for f in figures]
    assert heights[1] < heights[0] / 3


def test_too_many_flows_and_recipients_become_one_chart_of_the_totals():
    doc = {
        "from": "2026-06-01",
        "to": "2026-06-30",
        "disclosures": [group(f"mash-referrals.{chr(65 + i)}", "syp", "2026-06", 10) for i in range(MAX_SERIES + 1)],
    }
    [figure] = disclosures_per_month(doc)
    assert figure.caption == f"All {MAX_SERIES + 1} flows and recipients: {10 * (MAX_SERIES + 1)} records disclosed"
    assert desc(figure.svg).endswith(f"2026-06: {10 * (MAX_SERIES + 1)}.")


def test_a_long_period_shows_the_months_with_disclosures_and_none_shows_no_chart():
    doc = {
        "from": "2020-01-01",
        "to": "2026-12-31",
        "disclosures": [group("mash-referrals.A", "syp", "2021-03", 5), group("mash-referrals.A", "syp", "2026-06", 6)],
    }
    [figure] = disclosures_per_month(doc)
    assert desc(figure.svg).endswith("2021-03: 5; 2026-06: 6.")
    assert disclosures_per_month({"from": "2026-01-01", "to": "2026-12-31", "disclosures": []}) == []
