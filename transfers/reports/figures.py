"""Which charts each report shows, made from the figures the report already holds.

The scorecard shows its trend (records per run, and the share of records failing each of
the six characteristics, one small chart each on one shared scale so their heights compare);
the IG report shows the records disclosed per month, one chart per flow and recipient while
that stays readable, else one for them all. Drawing is :mod:`transfers.reports.charts`; the
tables below each chart keep the exact figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from transfers.agreement import DIMENSIONS
from transfers.reports.charts import Frame, chart, count, nice_top, percent

MAX_SERIES = 6  # more small charts than this is a wall of pictures: one chart of the totals instead
MAX_MONTHS = 24  # a longer period shows the months that had disclosures, not every month between

_WIDE = Frame(width=880, height=220)
_SMALL = Frame(width=280, height=150, left=48, top=16)
_HALF = Frame(width=520, height=200)


@dataclass(frozen=True)
class Figure:
    """One chart on a page: its caption (plain text, escaped by the template) and its SVG (escaped here)."""

    caption: str
    svg: str


def quality_trend(trend: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[Figure]:
    """The scorecard's trend charts from its trend rows (``transfers.reports.trend_rows``), this run last; none for one run.

    Args:
        names: each characteristic's display name.
    """
    if len(trend) < 2:
        return []  # a first run has nothing to compare with; its figures are in the summary above
    labels = [str(t["logical_date"]) for t in trend]
    current = len(trend) - 1
    rows: list[int | None] = [t["rows"] for t in trend]
    figures = [
        Figure(
            f"Records checked per run: {_figure(rows[-1], count)} in this run",
            chart(
                "bar",
                labels,
                rows,
                ident="trend-records",
                title="Records checked per run",
                highlight=current,
                frame=_WIDE,
            ),
        )
    ]
    shares = {d: [_share(t["cells"][d]["failing"], t["rows"]) for t in trend] for d in DIMENSIONS}
    top = nice_top(max((v for s in shares.values() for v in s if v is not None), default=0), cap=1.0)
    for d in DIMENSIONS:
        title = f"{names[d]}: share of records failing per run"
        figures.append(
            Figure(
                f"{names[d]}: {_figure(shares[d][-1], percent)} failing in this run",
                chart(
                    "line",
                    labels,
                    shares[d],
                    ident=f"trend-{d}",
                    title=title,
                    fmt=percent,
                    top=top,
                    highlight=current,
                    frame=_SMALL,
                ),
            )
        )
    return figures


def disclosures_per_month(doc: Mapping[str, Any]) -> list[Figure]:
    """The IG report's records disclosed per month, from its ``disclosures`` groups (``transfers.reports.ig``)."""
    groups: Sequence[Mapping[str, Any]] = doc["disclosures"]
    if not groups:
        return []
    months = _months(doc["from"], doc["to"], {g["period"] for g in groups})
    series: dict[tuple[str, str, str], dict[str, int]] = {}
    for g in groups:
        key = (g["agreement"], g["flow"] or "", g["recipient_name"] or g["recipient"] or "")
        per_month = series.setdefault(key, {})
        per_month[g["period"]] = per_month.get(g["period"], 0) + g["rows"]
    if len(series) > MAX_SERIES:
        total: dict[str, int] = {}
        for per_month in series.values():
            for month, rows in per_month.items():
                total[month] = total.get(month, 0) + rows
        series = {("", f"All {len(series)} flows and recipients", ""): total}
    top = nice_top(max(v for per_month in series.values() for v in per_month.values()))
    frame = _WIDE if len(series) == 1 else _HALF
    figures = []
    for i, ((_agreement, flow, recipient), per_month) in enumerate(sorted(series.items())):
        what = f"{flow} to {recipient}" if recipient else flow
        values = [per_month.get(m, 0) for m in months]
        title = f"Records disclosed per month: {what}"
        figures.append(
            Figure(
                f"{what}: {count(sum(values))} records disclosed",
                chart("bar", months, values, ident=f"disclosures-{i + 1}", title=title, top=top, frame=frame),
            )
        )
    return figures


def _share(failing: int | None, rows: int | None) -> float | None:
    """Failing records as a share of the run's records; no figure when either is missing or nothing was checked."""
    if failing is None or not rows:
        return None
    return min(failing / rows, 1.0)


def _figure(value: float | None, fmt: Any) -> str:
    return "no figure" if value is None else fmt(value)


def _months(start: str, end: str, seen: set[str]) -> list[str]:
    """Every month from ``start`` to ``end`` (``YYYY-MM``) when there are few enough, else the months seen."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    n = (last.year - first.year) * 12 + last.month - first.month + 1
    if not 0 < n <= MAX_MONTHS:
        return sorted(seen)
    every = [f"{first.year + (first.month - 1 + k) // 12:04d}-{(first.month - 1 + k) % 12 + 1:02d}" for k in range(n)]
    return sorted(set(every) | seen)  # a disclosure dated outside the period (its logical date) still shows
