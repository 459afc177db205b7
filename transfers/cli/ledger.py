"""``transfers ledger verify`` (the tamper-evident disclosure ledger, checked end to end) and
``transfers ledger show`` (its entries, as recorded)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from transfers.cli._console import (
    EXIT_CONFIG,
    EXIT_LEDGER,
    JsonFlag,
    OldNow,
    as_of_option,
    either,
    err,
    fail,
    key,
    load_settings,
    new_table,
    out,
    parse_date,
    print_json,
)
from transfers.errors import TransferError

if TYPE_CHECKING:
    from transfers.ledger import Entry, Ledger
    from transfers.settings import Settings

app = typer.Typer(help="The tamper-evident disclosure ledger.", no_args_is_help=True)


@app.command("verify")
def ledger_verify(
    as_of: Annotated[str | None, as_of_option("check retention and destruction at recipients")] = None,
    now: OldNow = None,
) -> None:
    """Recompute the hash chain and compare it with its anchors and every archived manifest's ledger head.

    Also checks nothing is held past its retention, and no disclosure is overdue for destruction at its
    recipient (no verified certificate TRANSFERS_DESTRUCTION_GRACE_DAYS after destroy-by). An external anchor
    (TRANSFERS_LEDGER_ANCHOR_URL) catches a ledger rewritten together with the anchor beside it.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.reports.destruction import verify_destruction
    from transfers.retention.archive import manifest_heads
    from transfers.retention.audit import verify_retention

    as_of = either(as_of, now)
    settings = load_settings()
    try:
        heads, unreadable, unreachable = manifest_heads(settings.home, load_config(settings.config_dir), cli_connection)
        for line in unreachable:
            err.print(f"[yellow]not checked against its manifests:[/] {escape(line)}", highlight=False)
        with settings.open_ledger() as ledger:
            report = ledger.verify(heads=heads)
        report.problems.extend(unreadable)
        if report.ok:
            on = parse_date(as_of, "--as-of") if as_of else None
            verify_retention(settings, report, on)
            verify_destruction(settings, report, on)
    except TransferError as exc:
        fail(exc)
    if not report.ok:
        err.print(f"[bold red]ledger FAILED verification[/] ({settings.ledger_database.split('@')[-1]}):")
        for problem in report.problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_LEDGER)
    external = f" and external anchor {settings.ledger_anchor_url}" if settings.ledger_anchor_url else ""
    from transfers.ledger.anchor import FileAnchor, open_anchor

    if isinstance(anchor := open_anchor(settings.ledger_anchor_url), FileAnchor) and anchor.shares_volume_with(
            settings.home):
        err.print(f"[yellow]note:[/] the external anchor {escape(str(anchor.path))} is on the same volume as "
                  f"{escape(str(settings.home))}: whoever can rewrite the ledger may rewrite it too; "
                  f"put it on another volume or use s3://", highlight=False)
    out.print(f"[green]ledger ok[/]: {report.checked} entries, chain and anchor{external} verified, "
              f"{len(heads)} archived manifest head(s) found in it, every disclosed copy purged or within retention, "
              f"no destruction overdue at a recipient"
              + (f" ({len(unreachable)} archive(s) not reachable: not checked against their manifests)"
                 if unreachable else ""))


@app.command("show")
def ledger_show(
    kind: Annotated[str | None, typer.Option("--kind", help="only entries of this kind (disclosure, quality, "
                                                            "purge, ...; a wrong one lists them)")] = None,
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>)")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The ledger's entries as recorded, oldest first (newest last): number, time, kind, flow, date, recipient
    and payload. With --json, every column of each entry (with its hashes), one entry per line.

    Prints only what the ledger holds; `transfers ledger verify` checks nobody has altered it.
    """
    settings = load_settings()
    try:
        with settings.open_ledger() as ledger:
            _check_filters(settings, ledger, kind, flow)
            entries = ledger.entries(kind=kind, flow=flow)  # read a page at a time
            if as_json:
                print_json(e.columns() for e in entries)
                return
            # One section per entry, a field per row: readable in 80 columns, where a column per field is not.
            table = new_table(key("field"), "value", title="Ledger entries, oldest first")
            table.show_lines = False
            for e in entries:
                table.add_row(f"#{e.seq}", f"{e.kind}, recorded {e.at:%Y-%m-%d %H:%M:%S} UTC", style="bold")
                fields = _fields(e)
                for number, (name, value) in enumerate(fields, 1):
                    table.add_row(Text(name), Text(value), end_section=number == len(fields))
    except TransferError as exc:
        fail(exc)
    out.print(table if table.row_count else "no ledger entries" + (f" of kind {kind}" if kind else "")
              + (f" for {flow}" if flow else ""))


def _check_filters(settings: Settings, ledger: Ledger, kind: str | None, flow: str | None) -> None:
    """Exit 2 naming the kinds (or flows) there are, when ``kind`` (``flow``) is not one: a typo is not "no entries"."""
    from transfers.ledger.records import KINDS

    if kind is not None and kind not in (kinds := sorted(set(KINDS) | set(ledger.distinct("kind")))):
        err.print(f"[bold red]error:[/] --kind {escape(kind)!r} is not a kind of ledger entry; the kinds are: "
                  f"{', '.join(kinds)}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    if flow is None or flow in (recorded := ledger.distinct("flow")):
        return
    from transfers.agreement import load_config

    try:  # a configured flow with no entry yet is an empty answer, not a mistake
        configured = [ref.key for ref in load_config(settings.config_dir).flows()]
    except TransferError:
        configured = []  # the ledger is read even when the config is broken
    if flow not in configured:
        known = sorted(set(recorded) | set(configured))
        err.print(f"[bold red]error:[/] --flow {escape(flow)!r}: no such flow in the ledger or the config; flows: "
                  f"{', '.join(known) or 'none'}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)


def _fields(e: Entry) -> list[tuple[str, str]]:
    """The entry's columns and payload as (name, value), values as stored; empty ones left out (--json has them).

    A value that is not a string is shown as JSON with spaces after its commas, so it wraps between items.
    """
    # The entry's own columns on one row, apart from the payload's keys (a payload may hold its own "flow").
    day = e.logical_date.isoformat() if e.logical_date else None
    about = ", ".join(filter(None, [e.flow or e.agreement, day, f"to {e.recipient}" if e.recipient else None]))
    payload: dict[str, Any] = e.columns()["payload"]  # shown whole, as stored: no key of it is read here
    return [("about", about)] + [(name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                                 for name, value in payload.items() if value not in (None, "", [], {})]
