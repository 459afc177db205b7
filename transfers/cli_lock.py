"""``transfers unlock``: remove the run lock a killed run left behind."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape


def register(app: typer.Typer) -> None:
    from transfers import cli

    @app.command()
    def unlock(
        flow: Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")],
        date_: Annotated[str, typer.Option("--date", help="logical date YYYY-MM-DD")],
        force: Annotated[bool, typer.Option("--force", help="remove it even if its run may still be going")] = False,
    ) -> None:
        """Remove the lock of a (flow, logical date) whose run was killed, so the next run can start.

        Refused while the holder may still be running (its heartbeat is fresh), unless --force.
        """
        from transfers.runlock import RunLocks

        ds = cli._parse_date(date_).isoformat()
        settings = cli._settings()
        settings.home.mkdir(parents=True, exist_ok=True)
        try:
            locks = RunLocks(settings.ledger_database, ttl=settings.run_lock_ttl)
            try:
                holder = locks.holder(flow, ds)
                if holder is None:
                    cli.out.print(f"{flow} {ds}: not locked")
                    return
                if not force and locks.alive(holder):
                    cli.err.print(f"[bold red]refused:[/] {flow} {ds} is held by {escape(holder.describe())}, "
                                  f"last heartbeat {holder.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC: it may still be "
                                  f"running. Stop it first, or pass --force if you are sure it is gone",
                                  highlight=False)
                    raise typer.Exit(cli.EXIT_RUNNING)
                locks.release(flow, ds, None)
            finally:
                locks.close()
        except cli.TransferError as exc:
            cli._fail(exc)
        cli.out.print(f"{flow} {ds}: lock of {escape(holder.describe())} (since "
                      f"{holder.started_at:%Y-%m-%d %H:%M:%S} UTC) removed", highlight=False)
