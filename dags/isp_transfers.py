"""Airflow DAGs for isp-transfers: a send DAG per flow this party sends, a receive DAG per flow it receives,
plus the daily retention purge.

Built from the agreements under ``TRANSFERS_CONFIG_DIR`` (default: the project's ``config/``) for the
party ``TRANSFERS_PARTY`` names (unset: every flow is sent from here and none received, as in a
single-deployment demo). A send DAG follows the step list ``transfers.pipeline.STEPS``: one task per
step (per recipient for a per-recipient step; a step with ``mapped`` as plan, mapped parts and seal), so adding
a step to the list adds its task. A receive
DAG has one sensor, ``receive``, that looks for the night's delivery without holding a worker slot. Only
YAML and environment variables are read at parse time; each task calls its step with
the run, resolvers over Airflow Connections and Variables (so any secrets backend;
masked in task logs) and the ledger, and passes small values (counts, names) only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import (
    DAG,
    Connection,
    CronDataIntervalTimetable,
    PokeReturnValue,
    Variable,
    get_current_context,
    task,
    teardown,
)
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from transfers import pipeline
from transfers.agreement import FlowRef, Inbound, Recipient, load_config, receive_dag_id, sides
from transfers.deployment import check_deployment
from transfers.pipeline import FlowRun, Lock, Resolvers, Step
from transfers.settings import Settings
from transfers_airflow.alerts import FlowFailureNotifier
from transfers_airflow.executor import configured_executor

if TYPE_CHECKING:
    from transfers.connections import ConnInfo

CONFIG_DIR = Path(os.environ.get("TRANSFERS_CONFIG_DIR", Path(__file__).resolve().parent.parent / "config"))
TIMEZONE = os.environ.get("TRANSFERS_TIMEZONE", "Europe/London")  # the retention DAG; each flow names its own
STAGING_KEY = "transfers_staging_key"

# Only environment variables are read here (TRANSFERS_TASK_TIMEOUT_MINUTES, TRANSFERS_RUN_TIMEOUT_HOURS).
# and TRANSFERS_PARTY, which decides which DAGs this deployment has. CONFIG_DIR is given so that a
# scheduler whose transfers is installed (not a checkout) and whose working directory holds no config/
# still parses this file, instead of Settings refusing for want of one.
_LIMITS = Settings(config_dir=CONFIG_DIR)
_SIDES = sides(load_config(CONFIG_DIR), _LIMITS.party)  # an unknown party stops the file, naming it
# Several worker machines need a PostgreSQL ledger, a shared work store and an external anchor (and, to receive,
# a PostgreSQL store and an inbox every worker reaches): a deployment that lacks one fails here, at parse, the
# DAG file's import error naming every problem.
check_deployment(_LIMITS, executor=configured_executor(), receiving=_SIDES.receiving)
#: A whole run ends (failed) before the next night's is due, whatever hangs: max_active_runs=1 would
#: otherwise hold every later night behind it.
RUN_TIMEOUT = timedelta(hours=_LIMITS.run_timeout_hours)
TASK_TIMEOUT = min(timedelta(minutes=_LIMITS.task_timeout_minutes), RUN_TIMEOUT)
#: How often a sensor (a receive, a receipt) looks again; between looks it holds no worker slot.
POKE_SECONDS = _LIMITS.poke_seconds

DEFAULT_ARGS = {
    "owner": "isp-transfers",
    # A dropped connection is retried; a terminal error (bad data, wrong key,
    # lapsed agreement) fails at once through AirflowFailException below.
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    # Every network wait inside a task is bounded already; this bounds the task
    # as a whole (a huge extract, a source that stalls), so its retries still fit the run.
    "execution_timeout": TASK_TIMEOUT,
}


def _connection(conn_id: str) -> ConnInfo:
    from transfers_airflow.resolvers import conn_info  # the same conversion (and masking) the CLI uses

    return conn_info(conn_id, Connection.get(conn_id))


def _secret(name: str) -> str:
    value = Variable.get(name, default=None)
    if not value:
        from transfers.errors import SecretMissing

        raise SecretMissing(f"Airflow Variable {name!r} is not set (or AIRFLOW_VAR_{name.upper()})")
    mask_secret(value)
    return value


def _run_lock(settings: Settings, run: FlowRun, lock: Lock) -> Any:
    """This DAG run's hold on (flow, date), for the whole run though its tasks are separate processes.

    ``take`` (the first task) and ``join`` (the others) keep it after the task; ``release``
    (the cleanup teardown) removes it, and first refuses, touching nothing, if another
    run holds it: cleaning up would delete that run's working files.
    """
    from airflow.sdk import get_current_context

    from transfers.runlock import dag_owner, hold

    context = get_current_context()
    return hold(settings.ledger_database, run.ref.key, run.ds, dag_owner(context["dag"].dag_id, context["run_id"]),
                ttl=settings.run_lock_ttl, release=lock == "release", release_on_error=lock != "join")


def _in_run(ref_key: str, logical_date: Any, lock: Lock | None, work: Callable[[FlowRun], Any],
            outbox_parts: bool = True) -> Any:
    """``work(run)`` for this DAG run's (flow, date), in the run lock (unless ``lock`` is None) and the run's
    log; terminal errors fail at once. ``outbox_parts=False``: a mapped part, which needs no delivery file."""
    from contextlib import nullcontext

    from transfers.errors import TransferError
    from transfers.logical_date import flow_date
    from transfers.logs import run_log
    from transfers.workstore import task_files

    settings = Settings(config_dir=CONFIG_DIR)
    config = load_config(CONFIG_DIR)
    ref = config.flow(ref_key)
    # A scheduled run's logical date is its data interval start; a manual run given a date keeps that date
    # (its inferred interval is the period before it). Either way the day is taken on the flow's clock.
    start = logical_date or get_current_context()["data_interval_start"]
    if start is None:  # a manual run with neither a logical date nor an interval: no night to send
        raise AirflowFailException(f"{ref_key}: this DAG run has no logical date; trigger it with one")
    try:
        run = FlowRun(settings, config, ref, flow_date(start, ref.flow.timezone), staging_key=_secret(STAGING_KEY))
        settings.home.mkdir(parents=True, exist_ok=True)
        # task_files: the run's working files from the work store and back (TRANSFERS_WORK_STORE=s3://...).
        with _run_lock(settings, run, lock) if lock else nullcontext(), run_log(run.log_path), \
                task_files(run, _connection, outbox_parts) as task_run:  # the run's own log, under retention
            return work(task_run)
    except TransferError as exc:
        if exc.retriable:
            raise
        raise AirflowFailException(str(exc)) from None


def _step(ref_key: str, logical_date: Any, step: Step, partner: str | None = None,
          call: Callable[..., Any] | None = None, *args: Any, outbox_parts: bool = True) -> Any:
    """Run one entry of ``pipeline.STEPS`` (for one recipient if ``partner``); the task owns the ledger.

    ``call`` (with ``args`` after the step's own) is one of a mapped step's plan, part or seal functions.
    """

    def work(run: FlowRun) -> Any:
        recipient = () if partner is None else (run.recipient(partner),)
        with run.settings.open_ledger() as ledger:
            return (call or step.function)(run, Resolvers(_connection, _secret), ledger, *recipient, *args)

    # A wait step runs beside the run, after its lock may be gone: it only reads and records once.
    return _in_run(ref_key, logical_date, None if step.wait else step.lock, work, outbox_parts)


def _tasks(ref: FlowRef, step: Step, partner: str | None = None) -> tuple[Any, Any]:
    """The first and last of ``step``'s tasks (for ``partner``): one task, or a mapped step's plan and seal."""
    if step.mapped is None:
        made = _task(ref, step, partner)
        return made, made
    return _mapped(ref, step, partner)


def _mapped(ref: FlowRef, step: Step, partner: str | None) -> tuple[Any, Any]:
    """A mapped step (``Step.mapped``): plan >> a mapped task per planned part >> seal; returns (plan, seal).

    Every task goes through ``_step`` (the run lock, the run's log, the ledger) like any other. A plan with no
    parts (the outbox was sealed by an earlier attempt) leaves the mapped task skipped; the seal runs unless
    something failed (``none_failed``) and reports the sealed outbox as reused.
    """
    assert step.mapped is not None
    mapped = step.mapped
    plan_id, part_id, seal_id = step.task_ids(partner)

    def run_plan(logical_date: Any = None) -> list[dict[str, Any]]:
        return [dict(p) for p in _step(ref.key, logical_date, step, partner, mapped.plan)]

    def run_part(part: dict[str, Any], logical_date: Any = None) -> dict[str, Any]:
        get_current_context()["part_name"] = part["name"]  # type: ignore[typeddict-unknown-key]  # map_index_template
        # A part reads and writes its own rows only: the outbox's other delivery files stay in the work store.
        return dict(_step(ref.key, logical_date, step, partner, mapped.part, part, outbox_parts=False))

    def run_seal(planned: Any, made: Any, logical_date: Any = None) -> dict[str, Any]:
        # ``planned``: the plan's list; ``made``: every mapped part's return value, in map index order (empty when
        # none ran). Typed Any: at parse time both are XComArgs, resolved to values when the task runs.
        return dict(_step(ref.key, logical_date, step, partner, mapped.seal, list(planned), [dict(m) for m in made]))

    run_plan.__doc__ = mapped.plan.__doc__  # each task's doc in the UI
    run_part.__doc__ = mapped.part.__doc__
    run_seal.__doc__ = mapped.seal.__doc__
    planned = task(task_id=plan_id)(run_plan)()
    # The grid names each mapped instance by its part's file name rather than only its index.
    parts = task(task_id=part_id, map_index_template="{{ part_name }}")(run_part).expand(part=planned)
    sealed = task(task_id=seal_id, trigger_rule="none_failed")(run_seal)(planned, parts)
    return planned, sealed


def _task(ref: FlowRef, step: Step, partner: str | None = None) -> Any:
    """The task that runs ``step`` (for ``partner``) in this flow's DAG."""
    if step.gate:
        def gate(logical_date: Any = None) -> bool:
            result = _step(ref.key, logical_date, step)
            if not result["pending"]:  # nothing to do: the later tasks are skipped, so let go now
                _in_run(ref.key, logical_date, "release", lambda _run: None)
            return bool(result["pending"])

        gate.__doc__ = step.function.__doc__  # the task's doc in the UI
        return task.short_circuit(task_id=step.key())(gate)()

    if step.wait:
        return _sensor(ref, step, partner)

    def run_step(logical_date: Any = None) -> Mapping[str, Any]:
        return _step(ref.key, logical_date, step, partner)

    run_step.__doc__ = step.function.__doc__
    made = task(task_id=step.key(partner))(run_step)
    # A teardown runs whatever happened upstream, and, unlike an all_done
    # leaf, leaves the run's state to the real steps: a failed transfer
    # stays red. A failed cleanup shows red on its own task in the grid.
    return (teardown(made) if step.teardown else made)()


def _sensor(ref: FlowRef, step: Step, partner: str | None) -> Any:
    """A wait step as a sensor in reschedule mode: no worker slot is held between looks.

    ``RetriableError`` ``ReceiptPending`` is "not yet"; an overdue, rejected or refused receipt
    fails the task at once. Its timeout is the flow's ``receipt_within`` (the step itself says
    overdue when that has passed since the disclosure), plus one look.
    """
    from datetime import UTC, datetime

    start = datetime(2000, 1, 1, tzinfo=UTC)
    within = (ref.flow.receipt_within.after(start) - start).total_seconds()

    def poke(logical_date: Any = None) -> PokeReturnValue:
        from transfers.errors import ReceiptPending

        try:
            result = _step(ref.key, logical_date, step, partner)
        except ReceiptPending as exc:
            print(f"not yet: {exc}")  # the task log shows how long is left
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=dict(result))

    poke.__doc__ = step.function.__doc__
    return task.sensor(task_id=step.key(partner), mode="reschedule", poke_interval=POKE_SECONDS,
                       timeout=within + POKE_SECONDS)(poke)()


def build_flow_dag(ref: FlowRef) -> DAG:
    """One flow: a task per entry of ``pipeline.STEPS``, one per recipient for a per-recipient step.

    Today: check_agreement >> extract >> quality >> quality_part (mapped, one per range of the extract) >>
    quality_seal >> prepare >> prepare_part (mapped, the same ranges) >> prepare_seal >> (encrypt >> encrypt_part
    (mapped, one per delivery part) >> seal >> deliver) per recipient >> notify, and cleanup as the teardown; beside them, deliver_<partner> >> await_receipt_<partner>
    (a wait step: a sensor nothing else waits for, so notify and cleanup do not wait a day for it).
    """
    flow, agreement = ref.flow, ref.agreement
    shared = ", ".join(flow.shared_fields)
    doc = (
        f"### {agreement.name}: Data Flow {flow.id}\n\n{flow.name}.\n\n"
        f"* from **{flow.from_}** to **{', '.join(r.partner for r in flow.to)}**\n"
        f"* fields shared: {shared} (everything else is dropped)\n"
        f"* agreement in force {agreement.in_force} to {agreement.review_by}; file `{ref.path.name}`\n"
    )
    with DAG(
        dag_id=ref.key,
        description=flow.name,
        schedule=CronDataIntervalTimetable(flow.schedule, timezone=flow.timezone),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=RUN_TIMEOUT,
        # A failed task tells the flow's contacts, once per DAG run (transfers_airflow.alerts).
        default_args={**DEFAULT_ARGS, "on_failure_callback": FlowFailureNotifier(CONFIG_DIR)},
        tags=_tags(agreement.id, "send"),
        doc_md=doc,
    ) as dag:
        tails: list[Any] = []  # the tasks the next step waits for
        last: dict[str, Any] = {}  # each recipient's last task in its chain (deliver), which its wait step follows
        first_after_gate = None
        for group in pipeline.groups(pipeline.STEPS):
            if group[0].per_recipient:
                chains = [[_tasks(ref, step, recipient.partner) for step in group] for recipient in flow.to]
                last.update({recipient.partner: chain[-1][1] for recipient, chain in zip(flow.to, chains, strict=True)})
                for chain in chains:
                    for upstream, downstream in zip(chain, chain[1:], strict=False):
                        upstream[1] >> downstream[0]
                heads, new_tails = [c[0][0] for c in chains], [c[-1][1] for c in chains]
            else:
                head, tail = _tasks(ref, group[0])
                heads, new_tails = [head], [tail]
            for head in heads:
                for upstream in tails:
                    upstream >> head
            if first_after_gate is None and tails:
                first_after_gate = heads
            tails = new_tails
        for step in pipeline.STEPS:
            if step.wait:
                for recipient in flow.to if step.per_recipient else [None]:
                    waiter = _task(ref, step, recipient.partner if recipient else None)
                    for upstream in [last[recipient.partner]] if recipient else tails:
                        upstream >> waiter
        for step in pipeline.STEPS:
            if step.teardown:
                done = _task(ref, step)
                # From the first step that leaves working files and from the last: it waits for the
                # whole run, and is skipped with the rest when the gate finds nothing to do.
                for upstream in [*(first_after_gate or []), *tails]:
                    upstream >> done
    return dag


def _tags(agreement: str, direction: str) -> list[str]:
    party = [f"party:{_LIMITS.party}"] if _LIMITS.party else []
    return ["isp-transfers", agreement, direction, *party]


def _wait(ref: FlowRef) -> timedelta:
    """How long the receive sensor looks for a delivery: the flow's ``receipt_within`` (from the night's start)."""
    start = datetime(2000, 1, 1, tzinfo=UTC)  # a period in months is taken from a fixed day: a bound, not a date
    return ref.flow.receipt_within.after(start) - start


def _receive(ref_key: str, logical_date: Any) -> PokeReturnValue:
    """One look at the inbox: done with the receipt's small values, or not yet (``DeliveryPending``)."""
    from transfers.errors import DeliveryPending, TransferError
    from transfers.logical_date import flow_date
    from transfers.receive.run import receive

    settings = Settings(config_dir=CONFIG_DIR)
    config = load_config(CONFIG_DIR)
    ref = config.flow(ref_key)
    start = logical_date or get_current_context()["data_interval_start"]
    if start is None or settings.party is None:
        raise AirflowFailException(f"receive {ref_key}: this DAG run has no logical date, or TRANSFERS_PARTY is unset")
    try:
        with settings.open_ledger() as ledger:
            result = receive(settings, config, ref, flow_date(start, ref.flow.timezone),
                             Resolvers(_connection, _secret), ledger, me=settings.party)
    except DeliveryPending:
        return PokeReturnValue(is_done=False)  # not yet: the sensor gives its slot back and looks again later
    except TransferError as exc:
        if exc.retriable:
            raise
        raise AirflowFailException(str(exc)) from None
    return PokeReturnValue(is_done=True, xcom_value=dict(result))


def _inbox_doc(recipient: Recipient) -> str:
    mesh = recipient.mesh
    return f"MESH mailbox `{mesh.mailbox}` (workflow `{mesh.workflow_id}`)" if mesh else f"inbox `{recipient.path}`"


def build_receive_dag(inbound: Inbound) -> DAG:
    """One inbound flow: a ``receive`` sensor (reschedule mode) on the sender's schedule, waiting ``receipt_within``."""
    ref, flow = inbound.ref, inbound.ref.flow
    wait = _wait(ref)
    doc = (
        f"### {ref.agreement.name}: receive Data Flow {flow.id}\n\n{flow.name}.\n\n"
        f"* from **{flow.from_}** to **{inbound.recipient.partner}** (this party), "
        f"{_inbox_doc(inbound.recipient)}\n"
        f"* fields: {', '.join(flow.shared_fields)}\n"
        f"* waits up to {flow.receipt_within} (receipt_within) for the night's delivery\n"
    )
    with DAG(
        dag_id=receive_dag_id(ref),
        description=f"receive {flow.name}",
        # The sender's cron: the run starts with the sender's and its sensor waits for the delivery.
        schedule=CronDataIntervalTimetable(flow.schedule, timezone=flow.timezone),
        catchup=False,
        # A night still waiting (receipt_within may be a day) must not hold back the next night's run.
        max_active_runs=2,
        # The wait plus the last look, so the run never ends before its sensor's own timeout.
        dagrun_timeout=max(RUN_TIMEOUT, wait + TASK_TIMEOUT),
        default_args={**DEFAULT_ARGS, "on_failure_callback": FlowFailureNotifier(
            CONFIG_DIR, flow=ref.key, partner=inbound.recipient.partner)},
        tags=_tags(ref.agreement.id, "receive"),
        doc_md=doc,
    ) as dag:

        def receive(logical_date: Any = None) -> PokeReturnValue:
            return _receive(ref.key, logical_date)

        receive.__doc__ = _receive.__doc__
        task.sensor(task_id="receive", mode="reschedule", poke_interval=POKE_SECONDS,
                    timeout=wait.total_seconds())(receive)()
    return dag


def build_retention_dag() -> DAG:
    """Daily: delete what every flow's retention periods say must go, with evidence; then the exchange's duties.

    At a recipient (TRANSFERS_PARTY receiving flows) also the received rows and quarantined
    deliveries whose controller's destroy-by date has come, unless a legal hold keeps them. The
    ``exchange`` task then acts on partners' notices and issues destruction certificates (as a
    recipient), and collects certificates and notice confirmations (as a sender and controller).
    """
    with DAG(
        dag_id="isp-retention",
        description="Retention purge for every flow (staging, reports, partners' SFTP copies; at a recipient, "
                    "received data on the controller's date)",
        schedule=CronDataIntervalTimetable(os.environ.get("TRANSFERS_PURGE_SCHEDULE", "0 4 * * *"), timezone=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=RUN_TIMEOUT,
        default_args=DEFAULT_ARGS,
        tags=["isp-transfers", "retention"],
    ) as dag:

        @task(task_id="purge")
        def purge() -> dict:
            from transfers.errors import PurgeIncomplete
            from transfers.retention import execute_purge, plan_purge
            from transfers.settings import Settings

            settings = Settings(config_dir=CONFIG_DIR)
            config = load_config(CONFIG_DIR)
            with settings.open_ledger() as ledger:
                items = plan_purge(settings, config, ledger, connection=_connection)
                report = execute_purge(items, settings, config, ledger, _connection)
            if report.failed:
                # Fail visibly; whatever was not deleted stays due and is retried.
                raise PurgeIncomplete(f"{len(report.failed)} deletion(s) failed: " + "; ".join(report.failed))
            return {"due": len(items), "deleted": report.deleted}

        @task(task_id="exchange", trigger_rule="all_done")
        def exchange() -> dict:
            """Notices acted on and certificates issued (as a recipient); certificates and confirmations collected."""
            from transfers.errors import DeliveryUnavailable
            from transfers.exchange_daily import run_daily_exchange
            from transfers.settings import Settings

            settings = Settings(config_dir=CONFIG_DIR)
            with settings.open_ledger() as ledger:
                done = run_daily_exchange(settings, load_config(CONFIG_DIR), ledger, Resolvers(_connection, _secret))
            if done.problems:
                # Retried like a network failure: each part is idempotent, and tomorrow's run tries again.
                raise DeliveryUnavailable(f"{len(done.problems)} problem(s): " + "; ".join(done.problems))
            return done.summary()

        @task(task_id="alerts", trigger_rule="all_done")
        def alerts() -> dict:
            """Agreements due for review within 30 days and destruction certificates overdue: their contacts told,
            once a day."""
            from transfers_airflow.alerts import send_daily_alerts

            return send_daily_alerts(CONFIG_DIR, TIMEZONE, get_current_context())

        purge() >> exchange() >> alerts()
    return dag


if _SIDES.warning:
    logging.getLogger(__name__).warning(_SIDES.warning)
for _ref in _SIDES.sending:
    globals()[f"dag_{_ref.key.replace('-', '_').replace('.', '__')}"] = build_flow_dag(_ref)
for _inbound in _SIDES.receiving:
    globals()[f"dag_receive_{_inbound.key.replace('-', '_').replace('.', '__')}"] = build_receive_dag(_inbound)
retention_dag = build_retention_dag()
