"""What every ``transfers`` command shares: the consoles, exit codes, errors, dates and settings.

A leaf: it imports no other CLI module, so each command module imports it and
nothing imports a command module back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transfers.errors import ConfigError, RunLocked, TransferError

if TYPE_CHECKING:
    from transfers.settings import Settings

# soft_wrap: a long path or message stays on one line, so it can be copied whole.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# The codes an error class ends a command with are its ``exit_code``; these are for
# the checks a command makes itself (a usage error, a failed verification).
EXIT_FAILED, EXIT_CONFIG, EXIT_LEDGER, EXIT_RETRY = 1, 2, 3, 75
EXIT_RUNNING = 4  # another run holds the (flow, logical date) lock


def new_table(*headers: str, title: str) -> Table:
    """A table whose cells fold onto more lines rather than being cut: a path must stay whole."""
    shown = Table(*headers, title=title)
    for column in shown.columns:
        column.overflow = "fold"
    return shown


def fail(exc: TransferError) -> NoReturn:
    """Print ``exc`` on stderr and end the command with the error's own exit code."""
    if isinstance(exc, RunLocked):
        err.print(f"[bold yellow]not started:[/] {escape(str(exc))}", highlight=False)
    else:
        kind = "temporary failure" if exc.retriable else "error"
        err.print(f"[bold red]{kind}:[/] {escape(str(exc))}", highlight=False)
    raise typer.Exit(exc.exit_code)


def load_settings(config_dir: Path | None = None) -> Settings:
    """The deployment's settings, with ``config_dir`` when a command is given one; exit 2 when there is no config."""
    from transfers.settings import Settings

    try:
        # To the constructor, not copied in after: an installed copy run away from any config/ then
        # starts, with its var/ beside the config given.
        return Settings(config_dir=config_dir) if config_dir is not None else Settings()
    except ConfigError as exc:
        fail(exc)


def parse_date(value: str | None, option: str = "--date") -> date:
    """``value`` as a date (today in UTC when ``None``); exit 2 naming ``option`` when it is not one."""
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[bold red]error:[/] {option} {value!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(EXIT_CONFIG) from None


def own_party(settings: Settings, given: str | None) -> str:
    """The party a recipient's command acts as: ``--as``, else ``TRANSFERS_PARTY``; exit 2 saying how to set it."""
    me = given or settings.party
    if not me:
        err.print("[bold red]error:[/] whose inbox? set TRANSFERS_PARTY (this deployment's Tier 1 signatory id) "
                  "or pass --as PARTY")
        raise typer.Exit(EXIT_CONFIG)
    return me
