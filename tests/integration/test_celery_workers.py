"""A flow's send DAG run by Airflow's CeleryExecutor across two real Celery workers (issue 16, item 4).

The deployment is real (``tests.support.celery_airflow``): metadata and Celery results in a fresh
PostgreSQL database, the local Redis as broker, an api-server, a scheduler, a dag-processor and two
``airflow celery worker --concurrency 1``. The hand-over from worker 1 to worker 2 is made certain,
not left to timing: the test holds a lock on flow A's source table, so ``extract`` (on worker 1, the
only worker then) waits inside its query; meanwhile worker 1 is told to shut down warm (it finishes
that task and takes no other) and worker 2 starts. Released, ``extract`` ends on worker 1, and every
later task can only run on worker 2, from what worker 1 wrote.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest

from tests.conftest import require_part
from tests.integration.conftest import LOGICAL_DATE, World, conn_json, read_delivery, throwaway_pg_database
from tests.integration.privacy_world import pseudonyms
from tests.support.celery_airflow import CeleryDeployment, celery_deployment, redis_db
from tests.support.receipt_standin import StandInRecipient
from tests.support.s3 import moto_s3, s3_bucket
from transfers.connections import ConnInfo

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

FLOW = "mash-referrals.A"
PARTNER = "south-yorkshire-police"
INBOUND = "inbound/mash"
FIRST = ["check_agreement", "extract"]  # worker 1
LATER = ["quality", "prepare", f"encrypt_{PARTNER}", f"encrypt_{PARTNER}_part", f"seal_{PARTNER}",
         f"deliver_{PARTNER}", f"await_receipt_{PARTNER}", "notify", "cleanup"]  # worker 2


@contextmanager
def _source_locked(source_url: str) -> Iterator[tuple[Any, Callable[[], bool]]]:
    """Flow A's source table locked (ACCESS EXCLUSIVE) until the caller commits the yielded connection.

    Yields (that connection, whether a session of the source database waits for a lock: extract's query).
    """
    from sqlalchemy import create_engine, text

    database = source_url.rsplit("/", 1)[1]
    engine = create_engine(source_url)
    # pg_stat_activity is read once per transaction: the look must be outside the lock's transaction.
    watcher = create_engine(source_url, isolation_level="AUTOCOMMIT")
    conn = engine.connect()

    def waiting() -> bool:
        with watcher.connect() as look:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock'"
            return bool(look.execute(text(sql), {"db": database}).scalar())

    try:
        conn.execute(text("LOCK TABLE referrals IN ACCESS EXCLUSIVE MODE"))
        yield conn, waiting
    finally:
        conn.close()  # rolls back (so releases) if the test did not get as far as releasing it
        engine.dispose()
        watcher.dispose()


def _shared_env(world: World, ledger_url: str, store: ConnInfo, work_bucket: str, anchor_bucket: str) -> dict[str, str]:
    """What every process of the deployment is given: the world's config, keys, connections and secrets, and
    what several workers need (a PostgreSQL ledger, the S3 work store, the ledger's anchor in S3)."""
    env = {
        "TRANSFERS_CONFIG_DIR": str(world.settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(world.settings.keys),
        "TRANSFERS_WORKERS": "many",
        "TRANSFERS_LEDGER_URL": ledger_url,
        "TRANSFERS_WORK_STORE": f"s3://{work_bucket}/work",
        "TRANSFERS_WORK_STORE_CONN_ID": store.conn_id,
        "TRANSFERS_LEDGER_ANCHOR_URL": f"s3://{anchor_bucket}/ledger.head.json",
        # The anchor is read through boto3's standard chain, here pointed at moto's server.
        "AWS_ENDPOINT_URL_S3": str(store.extra["endpoint_url"]),
        "AWS_ACCESS_KEY_ID": str(store.login),
        "AWS_SECRET_ACCESS_KEY": str(store.password),
        "AWS_DEFAULT_REGION": str(store.extra["region_name"]),
        "TRANSFERS_DELIVERY_MAX_ROWS": "15",  # 40 rows: encrypted as 3 mapped parts
        "TRANSFERS_POKE_SECONDS": "2",  # the receipt sensor looks again every 2 s, not every 5 min
        "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": world.staging_key,
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": world.secrets["mash_pseudonym_key"],
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": world.secrets["transfers_signing_key"],
    }
    for conn_id, conn in {**world.connections, store.conn_id: store}.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(conn)
    return env


def _require_redis() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        require_part("Redis on 127.0.0.1:6379", False, f"{type(exc).__name__}: {exc}")
    finally:
        client.close()


def _states(airflow: CeleryDeployment, run: str) -> str:
    """Each task's state and worker, for a failure message."""
    return ", ".join(f"{t}={s}@{h}" for t, (s, h) in sorted(airflow.task_instances(FLOW, run).items()))


def test_a_send_dag_runs_on_two_celery_workers_worker_2_carrying_on_from_worker_1_s_extract(
    world, sshd, gpg_partner, pg_source, tmp_path
):
    _require_redis()
    started = time.monotonic()
    homes = {name: tmp_path / name for name in ("worker-1", "worker-2")}  # two machines' disks
    recipient = StandInRecipient(world, "A", INBOUND)
    try:
        with (
            throwaway_pg_database("isp_celery") as (metadata_url, _name),
            throwaway_pg_database("isp_celery_ledger") as (ledger_url, _ledger),
            moto_s3("work_s3") as store,
            s3_bucket(store, "isp-work", versioned=False) as (client, work_bucket),
            s3_bucket(store, "isp-anchor") as (_client, anchor_bucket),
            redis_db() as broker,
            celery_deployment(tmp_path / "airflow", metadata_url, broker,
                              _shared_env(world, ledger_url, store, work_bucket, anchor_bucket)) as airflow,
            _source_locked(pg_source[0]) as (lock, extract_waits),
        ):
            recipient.start()
            try:
                airflow.start_worker("worker-1", homes["worker-1"])
                run = airflow.trigger(FLOW, f"{LOGICAL_DATE.isoformat()}T00:00:00Z")

                # extract has started on worker 1 and waits for the source table inside its query.
                airflow.wait_for(
                    lambda: airflow.task_instances(FLOW, run).get("extract", (None, None))[0] == "running"
                    and extract_waits(),
                    "extract to run on worker 1 and wait for the locked source table",
                    timeout=600, logs=("scheduler", "worker-1"),
                )
                assert airflow.task_instances(FLOW, run)["check_agreement"] == ("success", "worker-1"), (
                    _states(airflow, run))
                airflow.warm_stop("worker-1")  # finishes extract, takes nothing more
                airflow.start_worker("worker-2", homes["worker-2"])
                lock.commit()  # extract's query goes on

                airflow.wait_for(lambda: airflow.processes["worker-1"].poll() is not None,
                                 "worker 1 to end after its warm shutdown", timeout=300, logs=("worker-1",))
                assert airflow.task_instances(FLOW, run)["extract"] == ("success", "worker-1"), (
                    f"{_states(airflow, run)}\n{airflow.tails('worker-1')}"
                )
                airflow.wait_for(lambda: airflow.run_state(FLOW, run) in ("success", "failed"), "the DAG run to end",
                                 timeout=900, logs=("scheduler", "worker-2"))
                state = airflow.run_state(FLOW, run)
                assert state == "success", (
                    f"run {state}: {_states(airflow, run)}\n{airflow.tails('scheduler', 'worker-2')}")
                ran_on = {task: host for task, (_state, host) in airflow.task_instances(FLOW, run).items()}
                objects = client.list_objects_v2(Bucket=work_bucket).get("Contents", [])
                run_places = ("work/runs/", "work/running/")
                left_in_store = sorted(o["Key"] for o in objects if o["Key"].startswith(run_places))
            finally:
                recipient.stop.set()
                recipient.join()
                left_on_workers = [p for home in homes.values() for place in ("runs", "outbox", "running", "tasks")
                                   for p in (home / place).rglob("*") if p.is_file()]

            # check_agreement and extract ran on worker 1; everything after, on worker 2 alone, from the store.
            assert {task for task, host in ran_on.items() if host == "worker-1"} == set(FIRST), ran_on
            later = {task for task, host in ran_on.items() if host == "worker-2"}
            assert later == set(ran_on) - set(FIRST), ran_on
            assert set(LATER) <= {task.split("[")[0] for task in later}, ran_on
            assert sum(task.startswith(f"encrypt_{PARTNER}_part[") for task in later) == 3, ran_on  # mapped parts
            # Neither worker keeps a run's working files, and cleanup removed the run's staging from the store.
            assert left_on_workers == []
            assert left_in_store == []
            ledger = world.settings.model_copy(update={"ledger_url": ledger_url}).open_ledger()
            try:
                assert [e.recipient for e in ledger.entries(kind="disclosure")] == [PARTNER]
                assert [e.payload["status"] for e in ledger.entries(kind="acknowledgement")] == ["acknowledged"]
            finally:
                ledger.close()
    finally:
        for home in homes.values():  # whatever happened, no worker's disk outlives the test (processes ended)
            shutil.rmtree(home, ignore_errors=True)

    # Worker 2 sent what worker 1 extracted: the delivery decrypts with gpg to the source's rows,
    # minimised (names dropped) and pseudonymised with the flow's key.
    delivered = world.delivered(INBOUND)
    assert [p.name for p in delivered] == [
        f"mash-referrals_A_{LOGICAL_DATE}_part{i:03d}of003.csv.pgp" for i in (1, 2, 3)]
    frame = pd.concat([read_delivery(gpg_partner, p) for p in delivered], ignore_index=True)
    source = _source_rows(pg_source[0])
    assert sorted(frame["referral_id"]) == sorted(source["referral_id"]) and len(frame) == 40
    assert "forename" not in frame.columns and "surname" not in frame.columns
    expected = pseudonyms(world, FLOW, source["nhs_number"])
    by_id = dict(zip(source["referral_id"], source["nhs_number"], strict=True))
    assert all(row.nhs_number == expected[by_id[row.referral_id]] for row in frame.itertuples())
    print(f"celery deployment test: {time.monotonic() - started:.0f} s")  # its wall time, with -s


def _source_rows(url: str) -> pd.DataFrame:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql("SELECT referral_id, nhs_number FROM referrals", conn, dtype=str)
    finally:
        engine.dispose()
