"""``transfers``: the same steps the DAGs run, by hand.

Exit codes scripts can rely on:
    0  done (or nothing to do)
    1  the transfer failed and trying again will not help (bad data, wrong key, lapsed agreement,
       an agreement not signed by every partner in this version: AgreementNotSigned)
    2  configuration or usage error (`validate` also for an agreement some partner has not signed)
    3  ledger verification failed
    4  another run of the same flow and logical date is going on (`run`): nothing was done
    75 temporary failure (server down): try again later

An error ends a command with its class's ``exit_code`` (``transfers.errors``).
This module only assembles the app: each command group lives in its own
module, and all of them share ``_console`` (which imports none of them).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from transfers.cli import (
    certificates,
    flows,
    hold,
    hostkey,
    ig,
    keys,
    ledger,
    lock,
    notices,
    privacy,
    quality,
    receipts,
    receive,
)
from transfers.cli._console import EXIT_CONFIG, EXIT_FAILED, EXIT_LEDGER, EXIT_RETRY, EXIT_RUNNING, out

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "EXIT_LEDGER", "EXIT_RETRY", "EXIT_RUNNING", "app", "main"]

app = typer.Typer(help="Secure, lawful data-flow transfers between Information Sharing Protocol partners.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)

DISTRIBUTION = "isp-transfers"


def installed_version() -> str:
    """The version of the installed distribution (a checkout run without ``uv sync`` has none)."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _print_version(asked: bool) -> None:
    if asked:
        out.print(f"{DISTRIBUTION} {installed_version()}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                           help="print the installed version and exit")] = False,
) -> None:
    """Secure, lawful data-flow transfers between Information Sharing Protocol partners."""


# `transfers --help` lists commands, then groups, each in the order added here.
app.command()(flows.validate)
app.command()(flows.run)
app.command()(receive.receive)
app.command("receipts")(receipts.receipts)
app.command("certificates")(certificates.certificates)
app.command()(flows.purge)
app.command("check")(quality.check)
app.command("correct")(privacy.correct)
app.command()(lock.unlock)

report_app = typer.Typer(help="Reports for people.", no_args_is_help=True)
report_app.command("quality")(quality.report_quality)
report_app.command("ig")(ig.report_ig)

app.add_typer(ledger.app, name="ledger")
app.add_typer(keys.app, name="keys")
app.add_typer(hostkey.app, name="hostkey")
app.add_typer(quality.expectations_app, name="expectations")
app.add_typer(report_app, name="report")
app.add_typer(ig.agreement_app, name="agreement")
app.add_typer(privacy.consent_app, name="consent")
app.add_typer(privacy.subject_app, name="subject")
app.add_typer(hold.app, name="hold")
app.add_typer(notices.app, name="notices")


def main() -> None:  # pragma: no cover - console script
    sys.exit(app())
