"""``transfers``: the same steps the DAGs run, by hand.

Exit codes scripts can rely on:
    0  done (or nothing to do)
    1  the transfer failed and trying again will not help (bad data, wrong key, lapsed agreement)
    2  configuration or usage error
    3  ledger verification failed
    75 temporary failure (server down): try again later
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from transfers.errors import ConfigError, LedgerTampered, RetriableError, TransferError

app = typer.Typer(help="Secure, lawful data-flow transfers between Information Sharing Protocol partners.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
ledger_app = typer.Typer(help="The tamper-evident disclosure ledger.", no_args_is_help=True)
keys_app = typer.Typer(help="Keys and secrets for a deployment.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(keys_app, name="keys")

# soft_wrap: a long path or message stays on one line, so it can be copied whole.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_FAILED, EXIT_CONFIG, EXIT_LEDGER, EXIT_RETRY = 1, 2, 3, 75


def _table(*headers: str, title: str) -> Table:
    """A table whose cells fold onto more lines rather than being cut: a path must stay whole."""
    table = Table(*headers, title=title)
    for column in table.columns:
        column.overflow = "fold"
    return table


def _fail(exc: TransferError) -> NoReturn:
    kind = "temporary failure" if exc.retriable else "error"
    err.print(f"[bold red]{kind}:[/] {escape(str(exc))}", highlight=False)
    if isinstance(exc, ConfigError):
        raise typer.Exit(EXIT_CONFIG)
    if isinstance(exc, LedgerTampered):
        raise typer.Exit(EXIT_LEDGER)
    raise typer.Exit(EXIT_RETRY if isinstance(exc, RetriableError) else EXIT_FAILED)


def _settings(config_dir: Path | None = None):  # noqa: ANN202
    from transfers.settings import Settings

    settings = Settings()
    if config_dir is not None:
        settings = settings.model_copy(update={"config_dir": config_dir})
    return settings


def _parse_date(value: str | None, option: str = "--date") -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        err.print(f"[bold red]error:[/] {option} {value!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(EXIT_CONFIG) from None


@app.command()
def validate(
    config_dir: Annotated[Path | None, typer.Argument(help="config directory (default: TRANSFERS_CONFIG_DIR or ./config)")] = None,
    on: Annotated[str | None, typer.Option("--on", help="check liveness on this date (default today)")] = None,
) -> None:
    """Check the Tier 1 register, every agreement and every recipient key."""
    from transfers.agreement import load_config
    from transfers.crypto import load_recipient_key

    settings = _settings(config_dir)
    today = _parse_date(on, "--on")
    try:
        config = load_config(settings.config_dir, today=today)
    except ConfigError as exc:
        err.print(f"[bold red]{len(exc.problems)} problem(s):[/]")
        for problem in exc.problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    problems = []
    table = _table("flow", "from", "to", "fields shared", "schedule", title=f"{settings.config_dir}: valid on {today}")
    for ref in config.flows():
        for recipient in ref.flow.to:
            key_path = settings.keys / recipient.key_file
            try:
                load_recipient_key(key_path, recipient.pgp_fingerprint)
            except TransferError as exc:
                problems.append(f"{ref.path}: flow {ref.flow.id} to {recipient.partner}: {exc}")
        table.add_row(
            ref.key,
            ref.flow.from_,
            ", ".join(r.partner for r in ref.flow.to),
            str(len(ref.flow.shared_fields)),
            ref.flow.schedule,
        )
    if problems:
        err.print(f"[bold red]{len(problems)} problem(s):[/]")
        for problem in problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    out.print(table)
    out.print(f"[green]ok[/]: {len(config.agreements)} agreement(s), {len(config.flows())} flow(s)")


@app.command()
def run(
    flow: Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")],
    date_: Annotated[str | None, typer.Option("--date", help="logical date YYYY-MM-DD (default today)")] = None,
) -> None:
    """Run one flow for one logical date: extract, check, minimise, encrypt, deliver, record.

    Credentials come from AIRFLOW_CONN_<ID> and secrets from AIRFLOW_VAR_<NAME>, as in Airflow.
    """
    from transfers.agreement import load_config
    from transfers.connections import env_connection, env_secret
    from transfers.pipeline import FlowRun, Resolvers, run_flow
    from transfers.staging import new_staging_key

    logical_date = _parse_date(date_)
    settings = _settings()
    try:
        config = load_config(settings.config_dir)
        ref = config.flow(flow)
        # One process runs every step, so a key that lives only in memory is enough.
        flow_run = FlowRun(settings, config, ref, logical_date, staging_key=new_staging_key())
        with out.status(f"{ref.key} {logical_date}") as status:
            results = run_flow(flow_run, Resolvers(env_connection, env_secret),
                               progress=lambda msg: status.update(f"{ref.key} {logical_date}: {msg}"))
    except TransferError as exc:
        _fail(exc)
    if results.get("status") == "already-delivered":
        out.print(f"{ref.key} {logical_date}: already delivered to every recipient; nothing sent")
        return
    quality = results.get("quality", {})
    prepared = results["prepare"]
    # Rows, each counted once: extracted = sent + held back by quality + excluded (any reason).
    excluded = sum((prepared.get("excluded") or {}).values())
    out.print(f"[green]{ref.key} {logical_date}[/]: {results['extract']['rows']} rows extracted, "
              f"{prepared['rows_out']} sent, {prepared.get('held_back', 0)} held back by quality, {excluded} excluded")
    from transfers.cli_privacy import privacy_summary

    if summary := privacy_summary(results.get("prepare", {}), results.get("notices")):
        out.print(f"  {escape(summary)}", highlight=False)
    for key, value in results.items():
        if key.startswith("deliver:"):
            out.print(f"  {key.split(':', 1)[1]}: {value['status']} ({value['files']} files, ledger entry {value['ledger_seq']})")
    if quality.get("report"):
        out.print(f"  quality report: {quality['report']}")


@app.command()
def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what is due, delete nothing")] = False,
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>)")] = None,
    now: Annotated[str | None, typer.Option("--now", help="pretend it is this date (for checks)")] = None,
) -> None:
    """Delete what the retention periods say must go, locally and on partners' servers."""
    from transfers.agreement import load_config
    from transfers.connections import env_connection
    from transfers.retention import execute_purge, plan_purge

    settings = _settings()
    moment = datetime.combine(_parse_date(now, "--now"), datetime.now(UTC).time(), UTC) if now else datetime.now(UTC)
    try:
        config = load_config(settings.config_dir)
        ledger = settings.open_ledger()
        items = plan_purge(settings, config, ledger, now=moment, only_flow=flow)
        home = f"{settings.home.resolve()}/"
        title = "due for deletion" if dry_run else "deleting"
        table = _table("place", "flow", "path", "created", "due", title=f"{title} (local paths under {home})")
        for item in items:
            shown = item.path.removeprefix(home)
            table.add_row(item.place, item.flow, shown, f"{item.created:%Y-%m-%d}", f"{item.due:%Y-%m-%d}")
        out.print(table if items else "nothing is due for deletion")
        if dry_run:
            return
        report = execute_purge(items, settings, config, ledger, env_connection, now=moment)
    except TransferError as exc:
        _fail(exc)
    out.print(f"[green]{report.deleted} deleted[/], {len(report.failed)} failed, {len(report.held)} held for runs in progress")
    for held in report.held:
        out.print(f"  - held: {escape(str(held))}", highlight=False)
    for failure in report.failed:
        err.print(f"  - {escape(str(failure))}", highlight=False)
    if report.failed:
        # Not silently skipped: the job fails, the ledger has a purge-failed entry, and it stays due.
        raise typer.Exit(EXIT_FAILED)


@ledger_app.command("verify")
def ledger_verify(
    now: Annotated[str | None, typer.Option("--now", help="check retention as on this date")] = None,
) -> None:
    """Recompute the hash chain and compare it with its anchor; check nothing is held past its retention."""
    from transfers.retention.audit import verify_retention

    settings = _settings()
    try:
        report = settings.open_ledger().verify()
        if report.ok:
            verify_retention(settings, report, now and _parse_date(now, "--now"))
    except TransferError as exc:
        _fail(exc)
    if not report.ok:
        err.print(f"[bold red]ledger FAILED verification[/] ({settings.ledger_database.split('@')[-1]}):")
        for problem in report.problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_LEDGER)
    out.print(f"[green]ledger ok[/]: {report.checked} entries, chain and anchor verified, "
              f"every disclosed copy purged or within retention")


@keys_app.command("staging")
def keys_staging() -> None:
    """Print a new staging key (set it as the Airflow Variable transfers_staging_key)."""
    from transfers.staging import new_staging_key

    print(new_staging_key())


def main() -> None:  # pragma: no cover - console script
    sys.exit(app())


from transfers.cli_quality import register as _quality  # noqa: E402

_quality(app)
from transfers.cli_ig import register as _ig; _ig(app)  # noqa: E402, E702, I001 - after the other "report" commands
from transfers.cli_privacy import register as _privacy; _privacy(app)  # noqa: E402, E702, I001
