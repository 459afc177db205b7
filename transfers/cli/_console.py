"""What every ``transfers`` command shares: the consoles, exit codes, errors, dates and settings.

A leaf: it imports no other CLI module, so each command module imports it and
nothing imports a command module back.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table

from transfers.errors import ConfigError, RunLocked, TransferError

if TYPE_CHECKING:
    from transfers.settings import Settings

T = TypeVar("T")


# soft_wrap: a long path or message stays on one line, so it can be copied whole.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

# The codes an error class ends a command with are its ``exit_code``; these are for
# the checks a command makes itself (a usage error, a failed verification).
EXIT_FAILED, EXIT_CONFIG, EXIT_LEDGER, EXIT_RETRY = 1, 2, 3, 75
EXIT_RUNNING = 4  # another run holds the (flow, logical date) lock


def new_table(*columns: str | Column, title: str) -> Table:
    """A table whose cells fold onto more lines rather than being cut: a path must stay whole.

    A header given as a string is a text column (wraps at spaces, folds a longer word); ``key`` makes a
    column never wrapped. Tables must read in 80 columns: text columns narrow to fit beside the key
    ones, and a cell may stack values one per line (flow, date, partner) rather than give each a column.
    """
    # A line between rows: a row may be several lines tall, and the eye must see where the next begins.
    shown = Table(*columns, title=title, show_lines=True)
    for column in shown.columns:
        if not column.no_wrap:
            column.overflow = "fold"
    return shown


def key(header: str) -> Column:
    """A column of values read whole (an id, a date, a status, a count): never wrapped or cut."""
    return Column(header, no_wrap=True)


def lines(*values: object) -> str:
    """Values stacked in one cell, one per line (the empty ones left out)."""
    return "\n".join(str(v) for v in values if v not in (None, ""))


def when(moment: datetime) -> str:
    """A time for a table cell: ``YYYY-MM-DD HH:MM`` in UTC, which wraps at the space in a narrow column."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M}"


def print_json(rows: Iterable[Mapping[str, Any]]) -> None:
    """``--json``: each row as one JSON object on its own line of stdout (JSON Lines), and nothing else there.

    Lines, not one array: a long listing streams (``jq -s`` makes it an array), and a command with one
    answer prints one line, which ``json.loads`` reads whole. Notes and errors stay on stderr.
    """
    for row in rows:
        sys.stdout.write(json.dumps(row, default=_jsonable, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


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


def date_option(default: str) -> Any:
    """The ``--date`` option: a flow run's logical date (the night it covers); ``default`` says what it is when omitted."""
    return typer.Option("--date", metavar="YYYY-MM-DD", help=f"the run's logical date ({default})")


def as_of_option(what: str) -> Any:
    """The ``--as-of`` option: "pretend today is" this date, for ``what`` the command judges by today.

    Every command spells it this way; ``--date`` is a flow run's logical date, never "today".
    """
    return typer.Option("--as-of", metavar="YYYY-MM-DD", help=f"{what} as if today were this date (default today)")


def deprecated_alias(old: str, new: str, metavar: str = "YYYY-MM-DD") -> Any:
    """A hidden option under an old spelling of ``new``: it still works, with a one-line note on stderr.

    Kept so scripts and cron lines written before the rename do not break; the command takes the value
    with ``either``.
    """

    def note(value: Any) -> Any:
        if value is not None:
            err.print(f"[yellow]deprecated:[/] {old} is the old spelling of {new} (same meaning); use {new}",
                      highlight=False)
        return value

    return typer.Option(old, hidden=True, metavar=metavar, callback=note)


def either(value: T | None, old_value: T | None, option: str = "--as-of", old: str = "--now") -> T | None:
    """``option``'s value, or its deprecated spelling ``old``'s; exit 2 when both are given."""
    if value is not None and old_value is not None:
        err.print(f"[bold red]error:[/] {old} is the old spelling of {option}: give only {option}")
        raise typer.Exit(EXIT_CONFIG)
    return value if value is not None else old_value


def as_of_moment(value: str | None, old_now: str | None = None) -> datetime:
    """Now, or the same time of day on the ``--as-of`` (or old ``--now``) date: what is due is judged then."""
    now, value = datetime.now(UTC), either(value, old_now)
    return datetime.combine(parse_date(value, "--as-of"), now.time(), UTC) if value else now


#: ``--now``, the old spelling of ``--as-of`` (purge, certificates, ledger verify, report ig).
OldNow = Annotated[str | None, deprecated_alias("--now", "--as-of")]
#: ``--json`` on a command that prints a table or a report (see ``print_json``).
JsonFlag = Annotated[bool, typer.Option(
    "--json", help="print JSON Lines on stdout (one object per line, nothing else there) for scripts")]


def own_party(settings: Settings, given: str | None) -> str:
    """The party a recipient's command acts as: ``--as``, else ``TRANSFERS_PARTY``; exit 2 saying how to set it."""
    me = given or settings.party
    if not me:
        err.print("[bold red]error:[/] whose inbox? set TRANSFERS_PARTY (this deployment's Tier 1 signatory id) "
                  "or pass --as PARTY")
        raise typer.Exit(EXIT_CONFIG)
    return me
