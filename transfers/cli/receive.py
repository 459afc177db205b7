"""``transfers receive``: the recipient's side of one inbound flow, by hand (the receive DAG's task)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import date_option, err, fail, load_settings, out, own_party, parse_date
from transfers.errors import DeliveryPending, DeliveryRejected, TransferError

#: Seconds between looks at the inbox while ``--wait`` runs.
POLL_SECONDS = 5.0


def receive(
    flow: Annotated[str, typer.Argument(help="<agreement>.<flow> sent to this party, e.g. mash-referrals.A")],
    date_: Annotated[str | None, date_option("default: today in the flow's timezone")] = None,
    party: Annotated[str | None, typer.Option("--as", help="receive as this party (default: TRANSFERS_PARTY)")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="wait up to this many seconds for the delivery "
                                                              "to arrive")] = 0,
) -> None:
    """Verify, load and acknowledge one delivery from the inbox: the sender's signatures, the file hashes,
    the columns and row count against the agreement we hold; then load the rows into our store in one
    transaction and return a signed receipt. A delivery that fails a check is quarantined (still
    encrypted) and a signed rejection is returned.

    Exit codes: 0 received (or received before), 1 rejected, 2 configuration, 75 not arrived yet.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection, cli_secret
    from transfers.pipeline import Resolvers
    from transfers.receive.run import receive as receive_delivery

    settings = load_settings()
    me = own_party(settings, party)
    logical_date = parse_date(date_)
    deadline = time.monotonic() + wait
    try:
        config = load_config(settings.config_dir)
        ref = config.flow(flow)
        if date_ is None:
            from transfers.logical_date import flow_date

            logical_date = flow_date(datetime.now(UTC), ref.flow.timezone)
        with settings.open_ledger() as ledger, out.status(f"{ref.key} {logical_date}: looking in the inbox") as status:
            while True:
                try:
                    result = receive_delivery(settings, config, ref, logical_date, Resolvers(cli_connection, cli_secret),
                                              ledger, me=me)
                    break
                except DeliveryPending as exc:
                    if time.monotonic() >= deadline:
                        raise
                    status.update(f"{ref.key} {logical_date}: waiting ({escape(str(exc))})")
                    time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    except DeliveryRejected as exc:
        where = settings.layout.quarantine_dir(ref.agreement.id, ref.flow.id, logical_date, ref.flow.from_)
        err.print(f"[bold red]rejected:[/] {ref.key} {logical_date} from {ref.flow.from_}: {escape(exc.reason)}",
                  highlight=False)
        err.print(f"  nothing was loaded; the files are kept encrypted in {where}; a signed rejection was "
                  f"returned to the sender", highlight=False)
        raise typer.Exit(exc.exit_code) from None
    except TransferError as exc:
        fail(exc)
    if result["already"]:
        out.print(f"{ref.key} {logical_date}: already received ({result['rows']} rows, receipt "
                  f"{(result['receipt_sha256'] or '')[:12]}); nothing loaded again")
        return
    out.print(f"[green]{ref.key} {logical_date}[/]: {result['rows']} rows from {ref.flow.from_} loaded into "
              f"{result['table']}; signed receipt {(result['receipt_sha256'] or '')[:12]} returned", highlight=False)
