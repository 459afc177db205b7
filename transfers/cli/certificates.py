"""``transfers certificates``: each disclosure past its destroy-by and its recipient's destruction certificate."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from transfers.cli._console import (
    EXIT_FAILED,
    EXIT_RETRY,
    JsonFlag,
    OldNow,
    as_of_moment,
    as_of_option,
    err,
    fail,
    key,
    lines,
    load_settings,
    new_table,
    out,
    print_json,
)
from transfers.errors import ConfigError, TransferError

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.ledger import Ledger
    from transfers.receive.certify import Issued
    from transfers.settings import Settings

#: How each state is shown; the detail (hash, dates, who records it) follows it.
_STYLE = {"destroyed": "green", "overdue": "bold red", "awaiting": "yellow", "refused": "bold red",
          "missing": "yellow", "error": "bold red", "at-controller": "", "unsupported": "yellow", "certified": "green"}


def certificates(
    collect: Annotated[bool, typer.Option("--collect", help="first collect, verify and record the certificates "
                                                            "recipients have returned (over SFTP, host key "
                                                            "pinned)")] = False,
    issue: Annotated[bool, typer.Option("--issue", help="as a recipient (TRANSFERS_PARTY): first sign and return "
                                                        "a certificate for each received delivery the purge has "
                                                        "wholly destroyed")] = False,
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>)")] = None,
    as_of: Annotated[str | None, as_of_option("judge destroy-by")] = None,
    now: OldNow = None,
    as_json: JsonFlag = False,
) -> None:
    """Each disclosure past its destroy-by (the controller's retention period after its date) and its state:
    destroyed at the recipient (its verified certificate's hash), awaiting, overdue (no certificate
    TRANSFERS_DESTRUCTION_GRACE_DAYS after destroy-by), at-controller or unsupported.

    With --json, one line per disclosure past its destroy-by; what --collect and --issue did goes to stderr.
    Exits 1 when a collected certificate was refused (recorded as certificate-refused), 75 when a
    recipient's server or key could not be used (try again later).
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.destruction import collect_certificates
    from transfers.reports.destruction import destruction_statuses

    settings = load_settings()
    moment = as_of_moment(as_of, now)
    collected, issued = [], []
    try:
        config = load_config(settings.config_dir)
        if flow is not None:
            config.flow(flow)  # an unknown flow is a usage error, not an empty table
        with settings.open_ledger() as ledger:
            if issue:
                issued = _issue(settings, config, ledger)
            if collect:
                collected = collect_certificates(settings, config, ledger, cli_connection, now=moment, flow=flow)
            states = [s for s in destruction_statuses(ledger, config, grace_days=settings.destruction_grace_days,
                                                      flow=flow, now=moment) if s.past_destroy_by]
    except TransferError as exc:
        fail(exc)
    said = err if as_json else out  # with --json, stdout holds the statuses only
    for done in issued:
        if done.error:
            err.print(f"[bold red]not issued:[/] {escape(done.delivery_id)}: {escape(done.error)}", highlight=False)
        else:
            said.print(f"issued: {escape(done.delivery_id)} to {escape(done.controller)} ({done.sent_to}), "
                      f"certificate {(done.certificate_sha256 or '')[:16]}", highlight=False)
    for result in collected:
        if result.status in ("refused", "error"):
            style = _STYLE[result.status]
            err.print(f"[{style}]{result.status}:[/] {escape(result.flow)} {result.logical_date} "
                      f"{escape(result.recipient)}: {escape(result.detail)}", highlight=False)
    if as_json:
        print_json({**dataclasses.asdict(s), "detail": s.detail()} for s in states)
    elif not states:
        out.print("no disclosures past their destroy-by date")
    else:
        table = new_table(key("flow, date, partner"), key("destroy by"), "destruction", key("refused"),
                          title="Destruction at recipients")
        for s in states:
            style = _STYLE.get(s.status, "")
            shown = f"[{style}]{s.status}[/]" if style else s.status
            table.add_row(lines(s.flow, s.logical_date, s.recipient), str(s.destroy_by or ""),
                          f"{shown}: {escape(s.detail())}", str(s.refused_certificates))
        out.print(table)
    if collect:
        counts = {k: sum(1 for r in collected if r.status == k) for k in ("certified", "refused", "missing", "error")}
        said.print(f"collected: {counts['certified']} certified, {counts['refused']} refused, "
                  f"{counts['missing']} not returned yet, {counts['error']} not reachable")
        if counts["refused"]:
            raise typer.Exit(EXIT_FAILED)
        if counts["error"]:
            raise typer.Exit(EXIT_RETRY)
    if any(done.error for done in issued):
        raise typer.Exit(EXIT_RETRY)


def _issue(settings: Settings, config: Config, ledger: Ledger) -> list[Issued]:
    """``--issue``: as TRANSFERS_PARTY, the certificates of every wholly destroyed received delivery."""
    from transfers.connections import cli_connection, cli_secret
    from transfers.pipeline import Resolvers
    from transfers.receive.certify import issue_certificates

    if not settings.party:
        raise ConfigError("--issue: whose certificates? set TRANSFERS_PARTY (this deployment's Tier 1 signatory id)")
    return issue_certificates(settings, config, ledger, Resolvers(cli_connection, cli_secret), me=settings.party)
