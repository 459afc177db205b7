"""``transfers validate``, ``run`` and ``purge``: a flow's configuration, its run, and what retention deletes."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from transfers.cli._console import (
    EXIT_CONFIG,
    EXIT_FAILED,
    OldNow,
    as_of_moment,
    as_of_option,
    date_option,
    deprecated_alias,
    either,
    err,
    fail,
    key,
    lines,
    load_settings,
    new_table,
    out,
    parse_date,
)
from transfers.cli.privacy import privacy_summary
from transfers.errors import ConfigError, TransferError

if TYPE_CHECKING:
    from transfers.agreement import Config, FlowRef, Sides
    from transfers.settings import Settings


def validate(
    target: Annotated[str | None, typer.Argument(
        metavar="[CONFIG_DIR | FLOW]",
        help="config directory (default: TRANSFERS_CONFIG_DIR, else ./config when it holds protocol.yaml, "
             "else the source checkout's); with --connect, "
             "a flow <agreement>.<flow> to check alone")] = None,
    as_of: Annotated[str | None, as_of_option("check liveness (in force, not past review)")] = None,
    on: Annotated[str | None, deprecated_alias("--on", "--as-of")] = None,
    connect: Annotated[bool, typer.Option(
        "--connect", help="also connect: the extract query (LIMIT 0) or CSV header, consent lists, each SFTP "
                          "server (host key, login, a test file) and each recipient key (valid 30 days); "
                          "for a flow received, the store and both signing keys")] = False,
) -> None:
    """Check the Tier 1 register, every agreement and its partners' sign-off, every key, every connection and secret.

    With TRANSFERS_PARTY set, only this party's side: what it needs to send the flows from it and to
    receive the flows to it (inbox, store, decryption and signing keys, the sender's pinned key);
    nothing of flows it neither sends nor receives.
    """
    from transfers.agreement import load_config, sides
    from transfers.agreement.signoff import require_signoff
    from transfers.connections import cli_connection, cli_secret
    from transfers.crypto import load_recipient_key, load_signing_key
    from transfers.deployment import deployment_problems
    from transfers.preflight import defined, defined_receiving

    config_dir, only = (Path(target), None) if target and (not connect or Path(target).is_dir()) else (None, target)
    settings = load_settings(config_dir)
    today = parse_date(either(as_of, on, "--as-of", "--on"), "--as-of")
    try:
        config = load_config(settings.config_dir, today=today)
        found = sides(config, settings.party)
    except ConfigError as exc:
        err.print(f"[bold red]{len(exc.problems)} problem(s):[/]")
        for problem in exc.problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG) from None
    if found.warning:
        err.print(f"[yellow]warning:[/] {escape(found.warning)}", highlight=False)
    if connect:
        _preflight(settings, config, found, only, today)
        return
    problems = []
    title = f"{settings.config_dir}: valid on {today}" + (f", for {settings.party}" if settings.party else "")
    table = new_table(key("flow"), "from, to", key("fields"), key("schedule"), title=title)
    for ref in found.sending:
        for recipient in ref.flow.to:
            key_path = settings.keys / recipient.key_file
            try:
                load_recipient_key(key_path, recipient.pgp_fingerprint)
            except TransferError as exc:
                problems.append(f"{ref.path}: flow {ref.flow.id} to {recipient.partner}: {exc}")
        sender = config.protocol.signatory(ref.flow.from_)
        if sender is not None and sender.signing_fingerprint:  # load_config already refused a sender without one
            try:
                load_signing_key(settings.keys / sender.key_file, sender.signing_fingerprint)
            except TransferError as exc:
                problems.append(f"{ref.path}: flow {ref.flow.id}: signing key of {sender.id}: {exc}")
        # Only whether each id resolves: a typo in an id is found now, not at 2am (--connect goes further).
        problems += [f"{ref.path}: flow {ref.flow.id}: {check.check}: {check.detail}"
                     for check in defined(ref, cli_connection, cli_secret) if check.failed]
        if (wait := _receipt_wait(ref)) >= timedelta(hours=settings.run_timeout_hours):
            problems.append(f"{ref.path}: flow {ref.flow.id}: receipt_within {ref.flow.receipt_within} is not shorter "
                            f"than a DAG run may last (TRANSFERS_RUN_TIMEOUT_HOURS={settings.run_timeout_hours:g}): "
                            f"the run would be stopped before a missing receipt is reported as overdue; "
                            f"shorten receipt_within (it was {wait})")
        table.add_row(lines(ref.key, "send"), lines(ref.flow.from_, "to " + ", ".join(r.partner for r in ref.flow.to)),
                      str(len(ref.flow.shared_fields)), ref.flow.schedule)
    for inbound in found.receiving:
        ref = inbound.ref
        problems += [f"{ref.path}: flow {ref.flow.id} (receive): {check.check}: {check.detail}"
                     for check in defined_receiving(inbound, cli_secret, settings=settings, protocol=config.protocol,
                                                       connection=cli_connection)
                     if check.failed]
        table.add_row(lines(ref.key, "receive"), lines(ref.flow.from_, f"to {inbound.recipient.partner}"),
                      str(len(ref.flow.shared_fields)), ref.flow.schedule)
    # Several workers (TRANSFERS_WORKERS=many, or the executor Airflow is set to) need shared state.
    problems += deployment_problems(settings, executor=os.environ.get("AIRFLOW__CORE__EXECUTOR"),
                                    receiving=found.receiving)
    for loaded in config.agreements:
        if settings.party and settings.party not in loaded.agreement.partners:
            continue  # another party's agreement: not this deployment's to check
        # Tier 2 sign-off: a flow runs only on a version every partner has signed, so validate says so first.
        try:
            require_signoff(loaded.path, loaded.agreement, config.protocol, settings.keys)
        except TransferError as exc:
            problems.append(f"{loaded.path}: {exc}")
    if problems:
        err.print(f"[bold red]{len(problems)} problem(s):[/]")
        for problem in problems:
            err.print(f"  - {escape(str(problem))}", highlight=False)
        raise typer.Exit(EXIT_CONFIG)
    out.print(table)
    counted = f"{len(found.sending)} flow(s) to send, {len(found.receiving)} to receive"
    out.print(f"[green]ok[/]: {len(config.agreements)} agreement(s), {counted}")


def _receipt_wait(ref: FlowRef) -> timedelta:
    """The flow's ``receipt_within`` as a length of time (a period in months is taken from a fixed day)."""
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return ref.flow.receipt_within.after(start) - start


def _preflight(settings: Settings, config: Config, found: Sides, only: str | None, today: date) -> None:
    """``validate --connect``: one row per check (with the side it is for), exit 1 if any failed."""
    from datetime import timedelta

    from transfers.connections import cli_connection, cli_secret
    from transfers.preflight import preflight, preflight_receiving

    try:
        if only:
            ref = config.flow(only)
            if not found.directions(ref):
                raise ConfigError(f"{only}: {settings.party} neither sends nor receives this flow "
                                  f"(TRANSFERS_PARTY); its checks are another party's")
    except TransferError as exc:
        fail(exc)
    sending = [r for r in found.sending if only in (None, r.key)]
    receiving = [i for i in found.receiving if only in (None, i.key)]
    # Tonight's run covers the day before (the data interval of a daily schedule).
    logical_date = today - timedelta(days=1)
    checks = []
    with out.status("connecting") as status:
        for ref in sending:
            status.update(f"checking {ref.key} (send)")
            checks += preflight(ref, cli_connection, cli_secret, config_root=config.root, keys_dir=settings.keys,
                                logical_date=logical_date, protocol=config.protocol, today=today)
        for inbound in receiving:
            status.update(f"checking {inbound.key} (receive)")
            checks += preflight_receiving(inbound, cli_secret, settings=settings, protocol=config.protocol,
                                                  connection=cli_connection)
    shown = {"ok": "[green]ok[/]", "FAILED": "[bold red]FAILED[/]", "skipped": "[yellow]skipped[/]"}
    table = new_table(key("flow"), "check", key("status"), "detail",
                      title=f"preflight on {today} (logical date {logical_date})")
    for check in checks:
        table.add_row(lines(check.flow, check.side), check.check, shown[check.status], escape(check.detail))
    out.print(table)
    for check in checks:
        if check.warning:  # passes tonight, but needs someone soon (a host-key pin running out)
            err.print(f"[bold yellow]warning:[/] {check.flow} ({check.side}): {check.check}: {escape(check.warning)}",
                      highlight=False)
    failed = [c for c in checks if c.failed]
    if failed:
        err.print(f"[bold red]{len(failed)} of {len(checks)} check(s) FAILED:[/]", highlight=False)
        for check in failed:  # whole, on one line each, to copy into a ticket
            err.print(f"  - {check.flow} ({check.side}): {check.check}: {escape(check.detail)}", highlight=False)
        raise typer.Exit(EXIT_FAILED)
    out.print(f"[green]ok[/]: {len(checks)} check(s) passed for {len(sending) + len(receiving)} flow(s)")


def run(
    flow: Annotated[str, typer.Argument(help="<agreement>.<flow>, e.g. mash-referrals.A")],
    date_: Annotated[str | None, date_option("default: today in the flow's timezone")] = None,
    wait: Annotated[float, typer.Option("--wait", min=0, help="if another run of this flow and date is going on, "
                                                              "wait up to this many seconds for it")] = 0,
    wait_receipt: Annotated[bool, typer.Option("--wait-receipt", help="after delivering, wait for each "
                                               "recipient's signed receipt (until acknowledged, rejected or "
                                               "overdue)")] = False,
    poll: Annotated[float, typer.Option("--poll", min=1, help="with --wait-receipt: seconds between looks")] = 60,
) -> None:
    """Run one flow for one logical date: extract, check, minimise, encrypt, deliver, record.

    Credentials come from Airflow Connections and Variables (or AIRFLOW_CONN_<ID> / AIRFLOW_VAR_<NAME>).
    One run per flow and date at a time: if another (CLI or DAG) holds it, exit 4 with
    "already running since ..." and touch nothing (or --wait for it first).
    With --wait-receipt it then waits for every recipient's signed receipt: exit 1 if one is
    rejected, refused (does not verify) or overdue.
    Exit codes: 0 done, 1 failed, 2 configuration, 4 already running, 75 try again later.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection, cli_secret
    from transfers.pipeline import FlowRun, Resolvers, run_flow
    from transfers.staging import new_staging_key

    logical_date = parse_date(date_)
    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        ref = config.flow(flow)
        if settings.party and ref.flow.from_ != settings.party:
            how = ("it receives it: `transfers receive`" if settings.party in {r.partner for r in ref.flow.to}
                   else "it has no part in this flow")
            raise ConfigError(f"flow {ref.key} is sent by {ref.flow.from_}, not by this deployment "
                              f"(TRANSFERS_PARTY={settings.party}); {how}")
        if date_ is None:  # today on the flow's clock, as its DAG dates its runs (not UTC's today)
            from transfers.logical_date import flow_date

            logical_date = flow_date(datetime.now(UTC), ref.flow.timezone)
        # One process runs every step, so a key that lives only in memory is enough.
        flow_run = FlowRun(settings, config, ref, logical_date, staging_key=new_staging_key())
        with out.status(f"{ref.key} {logical_date}") as status:
            results = run_flow(flow_run, Resolvers(cli_connection, cli_secret),
                               progress=lambda msg: status.update(f"{ref.key} {logical_date}: {msg}"), wait=wait,
                               wait_receipt=wait_receipt, poll=poll)
    except TransferError as exc:
        fail(exc)
    except OSError as exc:
        from transfers.diskspace import full_disk

        # A write no step wrapped (a marker, a report) still ends as a clear, retriable error.
        full = full_disk(exc, exc.filename or settings.home, "the run's files")
        if full is None:
            raise
        fail(full)
    if stale := results.get("took_over"):
        err.print(f"[yellow]note:[/] took over the lock of a run that stopped ({escape(stale['holder'])}, "
                  f"started {stale['since']})", highlight=False)
    if results.get("status") == "already-delivered":
        out.print(f"{ref.key} {logical_date}: already delivered to every recipient; nothing sent")
        _print_receipts(ref.flow.to, results)
        return
    quality = results.get("quality", {})
    prepared = results["prepare"]
    # Rows, each counted once: extracted = sent + held back by quality + excluded (any reason).
    excluded = sum((prepared.get("excluded") or {}).values())
    out.print(f"[green]{ref.key} {logical_date}[/]: {results['extract']['rows']} rows extracted, "
              f"{prepared['rows_out']} sent, {prepared.get('held_back', 0)} held back by quality, {excluded} excluded")
    if summary := privacy_summary(results.get("prepare", {}), results.get("notify")):
        out.print(f"  {escape(summary)}", highlight=False)
    for recipient in ref.flow.to:  # each step's result is under its task id: deliver_<partner>
        if value := results.get(f"deliver_{recipient.partner}"):
            out.print(f"  {recipient.partner}: {value['status']} ({value['files']} files, ledger entry {value['ledger_seq']})")
    if quality.get("report"):
        out.print(f"  quality report: {quality['report']}")
    _print_receipts(ref.flow.to, results)


def _print_receipts(recipients: Any, results: dict[str, Any]) -> None:
    for recipient in recipients:  # present only with --wait-receipt
        if ack := results.get(f"await_receipt_{recipient.partner}"):
            out.print(f"  {recipient.partner}: receipt {ack['status']}, {ack['rows']} rows loaded "
                      f"(receipt sha256 {ack['receipt_sha256']})")


def purge(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what is due, delete nothing")] = False,
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>)")] = None,
    as_of: Annotated[str | None, as_of_option("judge what is due")] = None,
    now: OldNow = None,
) -> None:
    """Delete what the retention periods say must go, locally and on partners' servers.

    At a recipient (TRANSFERS_PARTY set), also destroy received deliveries' rows in the store and
    quarantined deliveries on the controller's date, except what a legal hold keeps (transfers hold).
    With --as-of (best with --dry-run), a deletion is still recorded at the real time, with that date as its as_of.
    """
    from transfers.agreement import load_config
    from transfers.connections import cli_connection
    from transfers.retention import execute_purge, plan_purge

    settings = load_settings()
    as_of = either(as_of, now)
    moment = as_of_moment(as_of)
    try:
        config = load_config(settings.config_dir)
        with settings.open_ledger() as ledger:
            items = plan_purge(settings, config, ledger, now=moment, only_flow=flow)
            home = f"{settings.home.resolve()}/"
            table = new_table(key("place, flow"), "path or delivery", key("due, created"), "detail",
                              title="due for deletion" if dry_run else "deleting")
            for item in items:
                shown = item.path.removeprefix(home)
                detail = "; ".join(filter(None, [item.detail, f"held: {item.hold}" if item.hold else ""]))
                # Text, not markup: a delivery id like "x:A:..." is neither markup nor an emoji code.
                table.add_row(lines(item.place, item.flow), Text(shown),
                              lines(f"{item.due:%Y-%m-%d}", f"{item.created:%Y-%m-%d}"), Text(detail))
            if items:  # on a line of its own, whole, so it can be copied
                out.print(f"local paths are under\n  {escape(home)}", highlight=False)
            out.print(table if items else "nothing is due for deletion")
            if dry_run:
                return
            if as_of and items:
                out.print(f"due dates judged as on {moment:%Y-%m-%d} (--as-of); the ledger records the real time "
                          f"of each deletion, with {moment:%Y-%m-%d} as its 'as_of'", highlight=False)
            report = execute_purge(items, settings, config, ledger, cli_connection, now=moment)
    except TransferError as exc:
        fail(exc)
    out.print(f"[green]{report.deleted} deleted[/], {len(report.failed)} failed, {len(report.held)} held "
              f"(runs in progress, legal holds)")
    for held in report.held:
        out.print(f"  - held: {escape(str(held))}", highlight=False, emoji=False)
    for failure in report.failed:
        err.print(f"  - {escape(str(failure))}", highlight=False, emoji=False)
    if report.failed:
        # Not silently skipped: the job fails, the ledger has a purge-failed entry, and it stays due.
        raise typer.Exit(EXIT_FAILED)
