"""Reports for people: the data owner's quality scorecard.

A report is one self-contained HTML file (inline CSS, no script, no external
link or URL of any kind) because a data owner opens it on a locked-down machine and it
must never call out. A Content-Security-Policy of ``default-src 'none'`` backs
that up should a later template slip. The scorecard is rendered from plain data
(counts, field names, the agreement's words) handed in by the step that made
it. The rectification notice is the one report that names records (by record
key, never a field's value): it stays with the sender, in the same 0700
reports directory, under the same retention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from transfers.agreement import DIMENSIONS
from transfers.files import private_dir, write_atomic
from transfers.reports.figures import quality_trend

# Section 4 of the protocol (config/protocol.yaml, quality_characteristics), in its order.
CHARACTERISTICS: dict[str, tuple[str, str]] = {
    "accuracy": (
        "Accuracy",
        "Data should be accurate so as to present a fair picture of circumstances and enable informed decision-making.",
    ),
    "validity": (
        "Validity",
        "Data should represent clearly and appropriately the intended result and follow the rules and definitions.",
    ),
    "reliability": (
        "Reliability",
        "Data should reflect stable and consistent data collection processes with controls and verification.",
    ),
    "timeliness": (
        "Timeliness",
        "Data input should occur on a regular ongoing basis rather than being stored to be input later.",
    ),
    "relevance": ("Relevance", "Information collected should comprise the specific items of interest only."),
    "completeness": ("Completeness", "All the relevant data must be recorded."),
}
assert tuple(CHARACTERISTICS) == DIMENSIONS  # a mismatch is a programming error

_OUTCOMES = ("pass", "warn", "quarantine", "block")  # from least to most severe
TREND_RUNS = 10

_env = Environment(
    loader=PackageLoader("transfers.reports", "templates"),
    autoescape=True,  # every value is escaped; nothing in a report is trusted markup
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["share"] = lambda part, whole: f"{part / whole:.1%}" if whole else "–"


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def trend_rows(history: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The last runs' failing-row counts per characteristic, oldest first, this run last.

    ``history`` items are earlier runs' summaries as stored in the ledger. Only
    dates, counts and known outcome words are taken from them, so a malformed
    entry shows as blanks rather than as text in the report.
    """
    rows = []
    for day, item in [*_one_per_date(history, current)[-TREND_RUNS:], (_day(current), current)]:
        raw_dims = item.get("dimensions")
        dims: Mapping[str, Any] = raw_dims if isinstance(raw_dims, Mapping) else {}
        cells = {}
        for d in DIMENSIONS:
            raw_entry = dims.get(d)
            entry: Mapping[str, Any] = raw_entry if isinstance(raw_entry, Mapping) else {}
            outcome = entry.get("outcome")
            cells[d] = {
                "failing": _count(entry.get("failing_rows")),
                "outcome": outcome if outcome in _OUTCOMES else None,
            }
        rows.append({"logical_date": day, "rows": _count(item.get("rows")), "cells": cells, "current": item is current})
    return rows


def _day(item: Mapping[str, Any]) -> str:
    try:
        return date.fromisoformat(str(item.get("logical_date"))).isoformat()
    except ValueError:
        return "?"


def _one_per_date(history: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> list[tuple[str, Mapping]]:
    """Earlier runs, one per logical date (the latest re-run wins, in its place); none of this run's date."""
    by_day: dict[str, Mapping[str, Any]] = {}
    for item in history:
        if not isinstance(item, Mapping):
            continue
        day = _day(item)
        by_day.pop(day, None)  # a re-run replaces the date's earlier run and moves to where it happened
        by_day[day] = item
    by_day.pop(_day(current), None)
    return list(by_day.items())


def render_quality_html(document: Mapping[str, Any], *, history: Sequence[Mapping[str, Any]] = ()) -> str:
    """The data owner's scorecard for one run, as a self-contained HTML page.

    Args:
        document: the run's report document (see ``transfers.quality.report_document``).
        history: earlier runs' summaries, oldest first; shown as a trend table when given.
    """
    template = _env.get_template("quality.html.j2")
    trend = trend_rows(history, document)
    return template.render(
        doc=document,
        dimensions=DIMENSIONS,
        characteristics=CHARACTERISTICS,
        checks_of={d: [c for c in document["checks"] if c["dimension"] == d] for d in DIMENSIONS},
        warned=[d for d in DIMENSIONS if document["dimensions"][d]["outcome"] == "warn"],
        headline=headline(document),
        trend=trend,
        trend_charts=quality_trend(trend, {d: name for d, (name, _) in CHARACTERISTICS.items()}),
    )


def headline(document: Mapping[str, Any]) -> dict[str, str]:
    """The scorecard's first line, to be read in five seconds: what happened, to how many records, and why.

    Returns:
        ``state`` (``pass``, ``warn``, ``quarantine`` or ``block``: the page's colour), ``word`` (the
        outcome in one or two capitalised words, so the colour is never the only sign) and ``text``
        (records checked, what was done with them, and the worst characteristic).
    """
    dry = bool(document.get("dry_run"))
    would = "would be " if dry else ""
    rows = document["rows"]
    held = document.get("held_back_rows", document["quarantined"])
    dims = document["dimensions"]
    worst = max(DIMENSIONS, key=lambda d: (_OUTCOMES.index(dims[d]["outcome"]), dims[d]["failing_rows"],
                                           dims[d]["failed"]))
    w = dims[worst]
    if w["outcome"] == "pass":
        why = "all six characteristics passed"
    elif w["failing_rows"]:
        why = f"worst: {CHARACTERISTICS[worst][0]}, {w['failing_rows']} record{'' if w['failing_rows'] == 1 else 's'}"
        why += f" failing ({w['failing_rows'] / rows:.1%})" if rows else " failing"
    else:
        why = f"worst: {CHARACTERISTICS[worst][0]}, {w['failed']} check{'' if w['failed'] == 1 else 's'} failed"
    checked = f"{rows} record{'' if rows == 1 else 's'} checked" if rows else "the extract was empty (0 records)"
    if document["blocked"]:
        state, word, done = "block", "Blocked", f"{checked}, nothing {'would be' if dry else 'was'} sent"
    elif document["quarantined"]:
        state, word = "quarantine", "Held back"
        done = f"{held} of {rows} records {would}held back, {rows - held} {would}cleared to send"
    else:
        state = "warn" if w["outcome"] == "warn" else "pass"
        word = "Passed with warnings" if state == "warn" else "Passed"
        done = f"{checked}, all {would}cleared to send"
    return {"state": state, "word": f"Dry run: {word.lower()}" if dry else word, "text": f"{done}; {why}"}


def write_quality_report(
    document: Mapping[str, Any], report_dir: Path, *, history: Sequence[Mapping[str, Any]] = ()
) -> tuple[Path, Path]:
    """Write ``quality_<flow>_<date>.html`` and ``.json`` into ``report_dir``.

    The directory is created owner-only (0700) and each file is written to a
    temporary name, flushed and renamed, so a reader never sees half a report
    and a re-run replaces the old one whole. Files are 0600: they describe
    records of named people (counts only, but by flow and date).

    Returns:
        (html path, json path).
    """
    stem = f"quality_{document['flow']}_{document['logical_date']}"
    private_dir(report_dir)
    html_path = report_dir / f"{stem}.html"
    json_path = report_dir / f"{stem}.json"
    # the JSON carries the same trend as the page: earlier runs' dates, counts and outcome words only
    trend = [{k: v for k, v in row.items() if k != "current"} for row in trend_rows(history, document)]
    write_atomic(json_path, (json.dumps({**document, "trend": trend}, indent=2) + "\n").encode("utf-8"))
    write_atomic(html_path, render_quality_html(document, history=history).encode("utf-8"))
    return html_path, json_path


def write_rectification_html(
    outcome: Any, flow: Any, report_dir: Path, lines: Sequence[Mapping[str, str]], grouped: Sequence[Mapping], more: bool
) -> Path | None:
    """Render the rectification notice (``outcome.rectification_csv``) as a self-contained HTML page.

    Args:
        lines: the notice's first lines, as read from its CSV.
        grouped: the same lines grouped by record (``record_key``, ``row``, ``problems``).
        more: the CSV has more lines than are shown.
    """
    if outcome.rectification_csv is None:
        return None
    csv_path = Path(outcome.rectification_csv)
    html = _env.get_template("rectification.html.j2").render(
        agreement=outcome.agreement_id,
        flow=flow,
        logical_date=outcome.logical_date.isoformat() if outcome.logical_date else "",
        rows=lines,
        grouped=grouped,
        more=more,
        records=outcome.records_to_fix,
        extracted=outcome.rows,
        held_back=outcome.held_back_rows,
        dry_run=outcome.dry_run,
        csv_name=csv_path.name,
        characteristics=CHARACTERISTICS,
    )
    path = csv_path.with_suffix(".html")
    private_dir(report_dir)
    write_atomic(path, html.encode("utf-8"))
    return path
