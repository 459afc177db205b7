"""Data-quality commands: ``expectations export``, ``check`` (a dry run) and ``report quality``.

``transfers.cli`` adds ``check`` and the ``expectations`` group, and puts
``report_quality`` in its ``report`` group. Every command imports the quality
package (and so Great Expectations) only when run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from transfers.cli._console import (
    EXIT_CONFIG,
    EXIT_FAILED,
    JsonFlag,
    date_option,
    deprecated_alias,
    either,
    err,
    fail,
    load_settings,
    out,
    parse_date,
    print_json,
)
from transfers.errors import TransferError

if TYPE_CHECKING:
    from transfers.settings import Settings

expectations_app = typer.Typer(help="Great Expectations suites per flow (expectations/).", no_args_is_help=True)

FlowArg = Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")]
DateOpt = Annotated[str | None, date_option("default: today in UTC")]


def _expectations_dir(settings: Settings) -> Path:
    # Beside config/ and keys/, like the project's checked-in expectations/.
    return settings.config_dir.parent / "expectations"


@expectations_app.command("export")
def expectations_export(
    flow: FlowArg,
    date_: DateOpt = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="expectations directory (default: beside config/)")] = None,
    to: Annotated[Path | None, deprecated_alias("--to", "--out", metavar="DIR")] = None,
) -> None:
    """Write the suite derived from FLOW's field checks to expectations/<agreement>/<flow>.json.

    Hand-written expectations already in the file are kept.
    """
    from transfers.agreement import load_config
    from transfers.quality.suite import export_suite, load_expectations

    logical_date = parse_date(date_)
    settings = load_settings()
    try:
        ref = load_config(settings.config_dir).flow(flow)
        path = export_suite(ref.flow, agreement_id=ref.agreement.id, logical_date=logical_date,
                            expectations_dir=either(out_dir, to, "--out", "--to") or _expectations_dir(settings))
        kept = len(load_expectations(path, ref.flow))
    except TransferError as exc:
        fail(exc)
    out.print(f"[green]{ref.key}[/]: derived suite written to {escape(str(path))} "
              f"({kept} hand-written expectation(s) kept)", highlight=False)


#: The summary's columns: (header, width); numbers right-aligned. 74 characters: it reads in 80 columns.
_SUMMARY = (("characteristic", 14), ("checks", 6), ("failed", 6), ("records failing", 15), ("on failure", 10),
            ("outcome", 0))


def _print_summary(doc: dict, title: str) -> None:
    """One line per characteristic, in aligned columns: plain text, so it reads the same in a terminal, a log
    or a ticket, and fits 80 columns."""
    from transfers.agreement import DIMENSIONS

    out.print(title, highlight=False)
    out.print("  " + "  ".join(f"{header:<{width}}" for header, width in _SUMMARY).rstrip(), highlight=False)
    rows = doc.get("rows") or 0
    for d in DIMENSIONS:
        r = doc["dimensions"][d]
        share = f"{r['failing_rows'] / rows:.1%}" if rows else "-"
        failing = f"{r['failing_rows']} ({share})"
        out.print(f"  {d:<14}  {r['checks']:>6}  {r['failed']:>6}  {failing:>15}  {r['policy']:<10}  {r['outcome']}",
                  highlight=False)


def _verdict(doc: dict) -> str:
    # An empty extract has no record to correct: the source's export is what to look at.
    empty = "the extract was empty (no record to correct; check the source produced it): " if not doc.get("rows") else ""
    return empty + _outcome(doc)


def _outcome(doc: dict) -> str:
    if doc.get("blocked"):
        return f"[bold red]blocked[/] by {', '.join(doc['blocked'])}: nothing would be sent"
    if doc.get("quarantined"):
        # Rows, as the run line and the ledger count them: every copy of a held-back key.
        held = doc.get("held_back_rows", doc["quarantined"])
        return (f"[yellow]{held} record(s) held back[/] ({doc['quarantined']} record key(s)), "
                "the rest cleared to send")
    if any(doc["dimensions"][d]["outcome"] == "warn" for d in doc["dimensions"]):
        return "[yellow]cleared to send with warnings[/]"
    return "[green]all six characteristics passed[/]: cleared to send"


def _print_paths(paths: Mapping[str, Path | None]) -> None:

    for label, path in paths.items():
        if path is not None and Path(path).exists():
            out.print(f"  {label}: {escape(str(path))}", highlight=False)


def _notes(doc: dict) -> None:

    for d, r in doc["dimensions"].items():
        for note in r.get("notes", []):
            out.print(f"  {d}: {escape(str(note))}", highlight=False)


def check(flow: FlowArg, date_: DateOpt = None) -> None:
    """Dry run: extract FLOW for --date and check its quality. Sends nothing and writes no ledger entry.

    Prints the scorecard summary; the reports go to reports/<agreement>/<flow>/dry-run/.
    Exits 1 when a characteristic would block the transfer, 2 when the consent register or
    opt-out list cannot be read as declared (file, table or column). The agreement need not be
    in force yet: checking a source before go-live is what a dry run is for.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.consent import probe_subject_lists
    from transfers.quality.dry_run import dry_run
    from transfers.quality.report import report_document

    logical_date = parse_date(date_)
    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        ref = config.flow(flow)
        # Before the extract, so a wrong list is reported even when the extract fails.
        list_problems = probe_subject_lists(ref.flow.consent, cli_connection)
        for problem in list_problems:
            err.print(f"[bold red]consent lists:[/] {escape(problem)}", highlight=False)
        with out.status(f"{ref.key} {logical_date}: extracting and checking (dry run)"):
            outcome = dry_run(settings, config, ref, logical_date, cli_connection)
    except TransferError as exc:
        fail(exc)
    doc = report_document(outcome, ref.flow)
    _print_summary(doc, f"{ref.key} {logical_date}: {outcome.rows} records (dry run, nothing sent)")
    _notes(doc)
    out.print(_verdict(doc))
    out.print(f"  records to fix: {outcome.records_to_fix}")
    _print_paths({"scorecard": outcome.report_html, "scorecard (JSON)": outcome.report_json,
                  "rectification notice": outcome.rectification_html,
                  "rectification notice (CSV)": outcome.rectification_csv})
    if list_problems:
        err.print(f"[bold red]{len(list_problems)} consent list problem(s)[/]: a run would stop before sending",
                  highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if outcome.blocked:
        raise typer.Exit(EXIT_FAILED)


def report_quality(
    flow: FlowArg,
    date_: Annotated[str | None, date_option("default: the latest run")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the quality summary of FLOW's run on --date (default: its latest run) and the reports' paths.

    With --json, one line: the scorecard as its JSON file holds it (counts, no record values), the files
    written and the recent runs' failing records per characteristic.
    """
    import json

    from transfers.agreement import load_config
    from transfers.quality.dry_run import reports_dir
    from transfers.workstore.mirror import mirror_reports

    settings = load_settings()
    try:
        ref = load_config(settings.config_dir).flow(flow)
    except TransferError as exc:
        fail(exc)
    try:  # with an S3 work store, reports published by tasks on any worker join this home's first
        mirror_reports(settings, ref.agreement.id, ref.flow.id)
    except TransferError as exc:
        fail(exc)
    folder = reports_dir(settings, ref)
    prefix = f"quality_{ref.flow.id}_"
    if date_ is None:
        found = sorted(folder.glob(f"{prefix}*.json")) if folder.is_dir() else []
        if not found:
            err.print(f"[bold red]error:[/] no quality report for {ref.key} under {escape(str(folder))}; "
                      f"run the flow (or `transfers check {ref.key}`) first", highlight=False)
            raise typer.Exit(EXIT_CONFIG)
        json_path = found[-1]  # ISO dates sort in date order
    else:
        json_path = folder / f"{prefix}{parse_date(date_).isoformat()}.json"
        if not json_path.is_file():
            err.print(f"[bold red]error:[/] no quality report for {ref.key} on {date_} ({escape(str(json_path))})",
                      highlight=False)
            raise typer.Exit(EXIT_CONFIG)
    doc = json.loads(json_path.read_text(encoding="utf-8"))
    stem = json_path.stem.removeprefix("quality_")
    paths = {"scorecard": json_path.with_suffix(".html"), "scorecard (JSON)": json_path,
             "rectification notice": folder / f"rectification_{stem}.html",
             "rectification notice (CSV)": folder / f"rectification_{stem}.csv"}
    trend = _trend(settings, ref.key)
    if as_json:
        files = {label: path for label, path in paths.items() if path.exists()}
        print_json([{"flow": ref.key, "scorecard": doc, "files": files, "recent_runs": trend}])
        return
    _print_summary(doc, f"{ref.key} {doc['logical_date']}: {doc['rows']} records")
    _notes(doc)
    out.print(_verdict(doc).replace("would be", "was"))
    rect = doc.get("rectification") or {}
    if rect:
        out.print(f"  records to fix: {rect.get('records', 0)}")
    _print_paths(paths)
    _print_trend(trend)


def _trend(settings: Settings, flow_key: str) -> list[dict[str, Any]]:
    """The last runs from the ledger (counts only), oldest first; none when there is no earlier run."""
    from transfers.ledger.records import QualityResult
    from transfers.reports import TREND_RUNS, trend_rows

    try:
        # Twice the trend: re-runs of a date are in the ledger too, and the trend shows each date once.
        with settings.open_ledger() as ledger:
            history = [dict(r.summary) for r in ledger.latest_records(QualityResult, 2 * TREND_RUNS + 1, flow=flow_key)]
    except TransferError:
        return []
    return trend_rows(history[:-1], history[-1]) if len(history) >= 2 else []


def _print_trend(rows: list[dict[str, Any]]) -> None:
    """Failing records per characteristic over the recent runs, one line each."""
    if not rows:
        return
    out.print("  recent runs (records failing per characteristic):")
    for row in rows:
        cells = ", ".join(f"{d} {c['failing']}" for d, c in row["cells"].items() if c["failing"])
        out.print(f"    {row['logical_date']}: {row['rows']} records; {cells or 'no failures'}", highlight=False)

