"""Data-quality commands: ``expectations export``, ``check`` (a dry run) and ``report quality``.

Registered from ``transfers.cli`` with one line, so cli.py stays small. Every
command imports the quality package (and so Great Expectations) only when run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from transfers.errors import TransferError

expectations_app = typer.Typer(help="Great Expectations suites per flow (expectations/).", no_args_is_help=True)
report_app = typer.Typer(help="Reports for people.", no_args_is_help=True)

FlowArg = Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")]
DateOpt = Annotated[str | None, typer.Option("--date", help="logical date YYYY-MM-DD (default today)")]


def _expectations_dir(settings) -> Path:  # noqa: ANN001
    # Beside config/ and keys/, like the project's checked-in expectations/.
    return settings.config_dir.parent / "expectations"


@expectations_app.command("export")
def expectations_export(
    flow: FlowArg,
    date_: DateOpt = None,
    to: Annotated[Path | None, typer.Option("--to", help="expectations directory (default: beside config/)")] = None,
) -> None:
    """Write the suite derived from FLOW's field checks to expectations/<agreement>/<flow>.json.

    Hand-written expectations already in the file are kept.
    """
    from transfers.agreement import load_config
    from transfers.cli import _fail, _parse_date, _settings, out
    from transfers.quality.suite import export_suite, load_expectations

    logical_date = _parse_date(date_)
    settings = _settings()
    try:
        ref = load_config(settings.config_dir).flow(flow)
        path = export_suite(ref.flow, agreement_id=ref.agreement.id, logical_date=logical_date,
                            expectations_dir=to or _expectations_dir(settings))
        kept = len(load_expectations(path, ref.flow))
    except TransferError as exc:
        _fail(exc)
    out.print(f"[green]{ref.key}[/]: derived suite written to {escape(str(path))} "
              f"({kept} hand-written expectation(s) kept)", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the quality commands to the ``transfers`` app."""
    app.add_typer(expectations_app, name="expectations")
    app.add_typer(report_app, name="report")
