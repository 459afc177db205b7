"""The report files one flow keeps, found by the layout's own shape and served by name only.

The pages in the Airflow UI (``transfers_airflow.ui``) list and open the files the runs wrote
under ``HomeLayout.reports_dir(agreement, flow)``: the quality scorecards and rectification
notices (``quality_<flow>_<date>.html``, ``rectification_<flow>_<date>.html`` and their
``.json``/``.csv``), a dry run's in ``dry-run/``. A name asked for from outside (a query string)
is never joined to a path: it is looked up among the names this listing found, which are
regular files (never symlinks) inside the folder, so nothing outside the reports folder can be
reached by any spelling (``..``, absolute paths, encoded slashes, NUL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transfers.settings import Settings

__all__ = ["KINDS", "ReportFile", "flow_reports", "report_file"]

#: The report kinds a flow's folder holds, by the file name's first word.
KINDS = ("quality", "rectification")
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".json": "application/json", ".csv": "text/csv; charset=utf-8"}


@dataclass(frozen=True)
class ReportFile:
    """One report file of a flow: its name (relative to the flow's reports folder), kind, run date and path."""

    name: str  # "quality_A_2026-11-25.html" or "dry-run/quality_A_2026-11-25.html"
    kind: str
    day: date
    dry_run: bool
    path: Path

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.path.suffix]


def flow_reports(settings: Settings, agreement: str, flow: str) -> list[ReportFile]:
    """Every report file of one flow, newest run first (a real run before a dry run of the same date)."""
    base = settings.layout.reports_dir(agreement, flow)
    inside = base.resolve()
    found = []
    for held in settings.layout.held("reports", agreement, flow):
        path = held.path
        kind = path.name.partition("_")[0]
        if held.day is None or kind not in KINDS or path.suffix not in MEDIA_TYPES:
            continue
        if not path.resolve().is_relative_to(inside):
            continue  # the listing skips symlinks already; a folder swapped for one meanwhile is not followed
        relative = path.relative_to(base)
        dry = relative.parts[0] == "dry-run"
        if len(relative.parts) != (2 if dry else 1):
            continue  # not where the layout writes reports
        found.append(ReportFile(relative.as_posix(), kind, held.day, dry, path))
    return sorted(found, key=lambda r: (-r.day.toordinal(), r.dry_run, r.kind, r.name))


def report_file(settings: Settings, agreement: str, flow: str, name: str) -> ReportFile | None:
    """The report file of one flow named ``name`` exactly as ``flow_reports`` lists it; None for any other name."""
    return next((r for r in flow_reports(settings, agreement, flow) if r.name == name), None)
