"""Airflow DAGs for isp-transfers: one DAG per Tier 2 data flow, plus the daily retention purge.

Built from the agreements under ``TRANSFERS_CONFIG_DIR`` (default: the project's
``config/``). Only YAML and environment variables are read at parse time; every
step runs in ``transfers.pipeline``, imported inside the task, and tasks pass
small values (counts, names) only. Credentials come from Airflow Connections
and Variables (so from any secrets backend) and are masked in task logs.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Connection, CronDataIntervalTimetable, Variable, get_current_context, task, teardown
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from transfers.agreement import FlowRef, load_config
from transfers.settings import Settings

CONFIG_DIR = Path(os.environ.get("TRANSFERS_CONFIG_DIR", Path(__file__).resolve().parent.parent / "config"))
TIMEZONE = os.environ.get("TRANSFERS_TIMEZONE", "Europe/London")  # the retention DAG; each flow names its own
STAGING_KEY = "transfers_staging_key"

# Only environment variables are read here (TRANSFERS_TASK_TIMEOUT_MINUTES, TRANSFERS_RUN_TIMEOUT_HOURS).
_LIMITS = Settings()
#: A whole run ends (failed) before the next night's is due, whatever hangs: max_active_runs=1 would
#: otherwise hold every later night behind it.
RUN_TIMEOUT = timedelta(hours=_LIMITS.run_timeout_hours)

DEFAULT_ARGS = {
    "owner": "isp-transfers",
    # A dropped connection is retried; a terminal error (bad data, wrong key,
    # lapsed agreement) fails at once through AirflowFailException below.
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    # Every network wait inside a task is bounded already; this bounds the task
    # as a whole (a huge extract, a source that stalls), so its retries still fit the run.
    "execution_timeout": min(timedelta(minutes=_LIMITS.task_timeout_minutes), RUN_TIMEOUT),
}


def _connection(conn_id: str):  # noqa: ANN202
    from transfers_airflow.resolvers import conn_info  # the same conversion (and masking) the CLI uses

    return conn_info(conn_id, Connection.get(conn_id))


def _secret(name: str) -> str:
    value = Variable.get(name, default=None)
    if not value:
        from transfers.errors import SecretMissing

        raise SecretMissing(f"Airflow Variable {name!r} is not set (or AIRFLOW_VAR_{name.upper()})")
    mask_secret(value)
    return value


def _run_lock(settings, run, lock: str):  # noqa: ANN001, ANN202
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


def _step(ref_key: str, logical_date, fn, *args, lock: str = "join"):  # noqa: ANN001, ANN202
    """Run one pipeline step; terminal errors fail the task without retries."""
    from transfers.errors import TransferError
    from transfers.logical_date import flow_date
    from transfers.logs import run_log
    from transfers.pipeline import FlowRun
    from transfers.settings import Settings

    settings = Settings(config_dir=CONFIG_DIR)
    config = load_config(CONFIG_DIR)
    ref = config.flow(ref_key)
    # A scheduled run's logical date is its data interval start; a manual run given a date keeps that date
    # (its inferred interval is the period before it). Either way the day is taken on the flow's clock.
    start = logical_date or get_current_context()["data_interval_start"]
    try:
        run = FlowRun(settings, config, ref, flow_date(start, ref.flow.timezone), staging_key=_secret(STAGING_KEY))
        settings.home.mkdir(parents=True, exist_ok=True)
        with _run_lock(settings, run, lock), run_log(run.log_path):  # the run's own log, under retention
            return fn(run, settings, *args)
    except TransferError as exc:
        if exc.retriable:
            raise
        raise AirflowFailException(str(exc)) from None


def build_flow_dag(ref: FlowRef) -> DAG:
    """One flow: check >> extract >> quality >> prepare >> (encrypt >> deliver) per recipient >> cleanup."""
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
        default_args=DEFAULT_ARGS,
        tags=["isp-transfers", agreement.id],
        doc_md=doc,
    ) as dag:

        @task.short_circuit(task_id="check_agreement")
        def check_agreement(logical_date=None) -> bool:  # noqa: ANN001
            from transfers.pipeline import check

            result = _step(ref.key, logical_date, lambda run, s: check(run, s.open_ledger()), lock="take")
            if not result["pending"]:  # nothing to do: the later tasks are skipped, so let go now
                _step(ref.key, logical_date, lambda run, s: {}, lock="release")
            return bool(result["pending"])

        @task(task_id="extract")
        def extract(logical_date=None) -> dict:  # noqa: ANN001
            from transfers.pipeline import extract as step

            return _step(ref.key, logical_date, lambda run, s: step(run, _connection(flow.source.connection)))

        @task(task_id="quality")
        def quality(logical_date=None) -> dict:  # noqa: ANN001
            from transfers.pipeline import assess

            return _step(ref.key, logical_date, lambda run, s: assess(run, s.open_ledger()))

        @task(task_id="minimise_pseudonymise")
        def prepare(logical_date=None) -> dict:  # noqa: ANN001
            from transfers.pipeline import prepare as step
            from transfers.pipeline import pseudonym_key
            from transfers.privacy.step import subject_lookup_key

            return _step(ref.key, logical_date, lambda run, s: step(
                run, pseudonym_key(run, _secret), ledger=s.open_ledger(), connection=_connection,
                lookup_key=subject_lookup_key(run, _secret)))

        @task(task_id="notify_withdrawals")
        def notify(logical_date=None) -> dict:  # noqa: ANN001
            """Withdrawals the register gained since earlier deliveries: a notice to each earlier recipient."""
            from transfers.notices import notify_withdrawals
            from transfers.pipeline import Resolvers

            return _step(ref.key, logical_date, lambda run, s: notify_withdrawals(
                run, Resolvers(_connection, _secret), s.open_ledger()))

        # A teardown runs whatever happened upstream, and, unlike an all_done
        # leaf, leaves the run's state to the real stages: a failed transfer
        # stays red. A failed cleanup shows red on its own task in the grid.
        @teardown
        @task(task_id="cleanup")
        def cleanup(logical_date=None) -> dict:  # noqa: ANN001
            from transfers.pipeline import cleanup as step

            return _step(ref.key, logical_date, lambda run, s: step(run), lock="release")

        extracted = extract()
        prepared = check_agreement() >> extracted >> quality() >> prepare()
        done = cleanup()
        extracted >> done
        notified = notify()
        notified >> done
        for recipient in flow.to:

            @task(task_id=f"encrypt_{recipient.partner}")
            def encrypt(partner: str, logical_date=None) -> dict:  # noqa: ANN001
                from transfers.pipeline import package

                return _step(ref.key, logical_date, lambda run, s: package(run, partner, s.open_ledger()))

            @task(task_id=f"deliver_{recipient.partner}")
            def deliver(partner: str, sftp: str, logical_date=None) -> dict:  # noqa: ANN001
                from transfers.delivery import SftpTarget
                from transfers.pipeline import deliver as step

                def go(run, s):  # noqa: ANN001, ANN202
                    target = SftpTarget.from_connection(_connection(sftp), run.recipient(partner), settings=s)
                    return step(run, partner, target, s.open_ledger(), connection=_connection)

                return _step(ref.key, logical_date, go)

            prepared >> encrypt(recipient.partner) >> deliver(recipient.partner, recipient.sftp) >> notified
    return dag


def build_retention_dag() -> DAG:
    """Daily: delete what every flow's retention periods say must go, with evidence."""
    with DAG(
        dag_id="isp-retention",
        description="Retention purge for every flow (staging, reports, partners' SFTP copies)",
        schedule=CronDataIntervalTimetable(os.environ.get("TRANSFERS_PURGE_SCHEDULE", "0 4 * * *"), timezone=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        dagrun_timeout=RUN_TIMEOUT,
        default_args=DEFAULT_ARGS,
        tags=["isp-transfers", "retention"],
    ) as dag:

        @task(task_id="purge")
        def purge() -> dict:
            from transfers.retention import execute_purge, plan_purge
            from transfers.settings import Settings

            settings = Settings(config_dir=CONFIG_DIR)
            config = load_config(CONFIG_DIR)
            ledger = settings.open_ledger()
            items = plan_purge(settings, config, ledger)
            report = execute_purge(items, settings, config, ledger, _connection)
            if report.failed:
                # Fail visibly; whatever was not deleted stays due and is retried.
                raise RuntimeError(f"{len(report.failed)} deletion(s) failed: " + "; ".join(report.failed))
            return {"due": len(items), "deleted": report.deleted}

        purge()
    return dag


for _ref in load_config(CONFIG_DIR).flows():
    globals()[f"dag_{_ref.key.replace('-', '_').replace('.', '__')}"] = build_flow_dag(_ref)
retention_dag = build_retention_dag()
