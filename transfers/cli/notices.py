"""``transfers notices apply`` (the recipient) and ``transfers notices confirmations`` (the sender)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import (
    EXIT_FAILED,
    JsonFlag,
    err,
    fail,
    key,
    lines,
    load_settings,
    new_table,
    out,
    own_party,
    print_json,
    when,
)
from transfers.errors import TransferError

app = typer.Typer(help="Withdrawal and correction notices: act on those received, collect partners' confirmations.",
                  no_args_is_help=True)

_STYLE = {"applied": "green", "already": "", "refused": "bold red", "confirmed": "green", "unconfirmed": "yellow"}


@app.command("apply")
def apply(
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>) sent to us")] = None,
    party: Annotated[str | None, typer.Option("--as", help="as this party (default: TRANSFERS_PARTY)")] = None,
) -> None:
    """Act on every notice in our inbox: a withdrawal deletes the subject's rows from every received table of
    its agreement, a correction marks them; each is confirmed to the sender, signed. A notice not signed by
    the flow sender's pinned key is refused (recorded, quarantined) and nothing is done.

    Exit codes: 0 every notice applied (or none waiting), 1 a notice was refused, 2 configuration.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection, cli_secret
    from transfers.pipeline import Resolvers
    from transfers.receive.notices import apply_notices

    settings = load_settings()
    me = own_party(settings, party)
    try:
        config = load_config(settings.config_dir)
        if flow is not None:
            config.flow(flow)
        with settings.open_ledger() as ledger:
            outcomes = apply_notices(settings, config, ledger, Resolvers(cli_connection, cli_secret), me=me,
                                     flow_key=flow)
    except TransferError as exc:
        fail(exc)
    if not outcomes:
        out.print("no notice waiting")
        return
    for o in outcomes:
        style = _STYLE.get(o.status, "")
        if o.status == "refused":
            err.print(f"[{style}]refused[/] {escape(o.name)} ({o.flow}): {escape(o.reason)}; nothing was done "
                      f"(ledger entry {o.ledger_seq})", highlight=False)
            continue
        done = "deleted" if o.notice == "withdrawal" else "marked"
        out.print(f"[{style}]{o.status}[/] {o.flow} {o.notice} notice {o.reference}: {o.rows} rows {done} in "
                  f"{', '.join(o.tables) or 'no table'}; signed confirmation returned (ledger entry {o.ledger_seq})",
                  highlight=False)
    if any(o.status == "refused" for o in outcomes):
        raise typer.Exit(EXIT_FAILED)


@app.command("confirmations")
def confirmations(
    collect: Annotated[bool, typer.Option("--collect", help="first read partners' confirmations over SFTP, "
                                                            "verify and record them")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each notice we sent and its recipient's signed confirmation: confirmed (rows deleted or marked),
    or unconfirmed. With --collect, confirmations not yet recorded are read and verified first."""
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.notice_confirmations import collect_confirmations, confirmation_statuses, describe

    settings = load_settings()
    problem: TransferError | None = None
    try:
        config = load_config(settings.config_dir)
        with settings.open_ledger() as ledger:
            if collect:
                try:
                    collect_confirmations(settings, config, ledger, cli_connection)
                except TransferError as exc:
                    problem = exc  # one partner unreachable: still show where every notice stands
            states = confirmation_statuses(ledger)
    except TransferError as exc:
        fail(exc)
    if as_json:
        print_json({**dataclasses.asdict(s), "detail": describe(s)} for s in states)
    elif not states:
        out.print("no notices sent")
    else:
        table = new_table(key("flow, partner"), key("notice"), "sent (UTC)", "confirmation", title="Notices")
        for s in states:
            style = _STYLE.get(s.status, "bold red")
            table.add_row(lines(s.flow, s.recipient), lines(s.notice, s.reference), when(s.sent_at),
                          f"[{style}]{escape(describe(s))}[/]")
        out.print(table)
    if problem is not None:
        fail(problem)
