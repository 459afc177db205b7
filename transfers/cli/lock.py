"""``transfers unlock``: remove the run lock a killed run left behind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import EXIT_RUNNING, date_option, err, fail, load_settings, out, parse_date
from transfers.errors import TransferError


def unlock(
    flow: Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")],
    date_: Annotated[str, date_option("required: the locked run's")],
    force: Annotated[bool, typer.Option("--force", help="remove it even if its run may still be going")] = False,
) -> None:
    """Remove the lock of a (flow, logical date) whose run was killed, so the next run can start.

    Refused while the holder may still be running (its heartbeat is fresh), unless --force.
    """
    from transfers.runlock import RunLocks

    ds = parse_date(date_).isoformat()
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        locks = RunLocks(settings.ledger_database, ttl=settings.run_lock_ttl)
        try:
            holder = locks.holder(flow, ds)
            if holder is None:
                out.print(f"{flow} {ds}: not locked")
                return
            if not force and locks.alive(holder):
                err.print(f"[bold red]refused:[/] {flow} {ds} is held by {escape(holder.describe())}, "
                          f"last heartbeat {holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC: it may still be "
                          f"running. Stop it first, or pass --force if you are sure it is gone",
                          highlight=False)
                raise typer.Exit(EXIT_RUNNING)
            locks.release(flow, ds, None)
        finally:
            locks.close()
    except TransferError as exc:
        fail(exc)
    out.print(f"{flow} {ds}: lock of {escape(holder.describe())} (since "
              f"{holder.started_at:%Y-%m-%d %H:%M:%S} UTC) removed", highlight=False)
