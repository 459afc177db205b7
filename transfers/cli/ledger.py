"""``transfers ledger verify``: the tamper-evident disclosure ledger, checked end to end."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import (
    EXIT_LEDGER,
    as_of_option,
    deprecated_alias,
    either,
    err,
    fail,
    load_settings,
    out,
    parse_date,
)
from transfers.errors import TransferError

app = typer.Typer(help="The tamper-evident disclosure ledger.", no_args_is_help=True)


@app.command("verify")
def ledger_verify(
    as_of: Annotated[str | None, as_of_option("check retention and destruction at recipients")] = None,
    now: Annotated[str | None, deprecated_alias("--now", "--as-of")] = None,
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

    as_of = either(as_of, now, "--as-of", "--now")
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
