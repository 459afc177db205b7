"""A run's working files in an S3 work store: any task on any worker, nothing left on a worker.

Real parts: moto's S3 server (``tests/support/s3.py``; no real S3 can run here), the world's sshd,
PostgreSQL (the source, and a fresh database as the shared ledger) and ``gpg`` decrypting what was
delivered. Each step runs as its own "task" through the DAG file's own wrapper (``_step`` in
``dags/isp_transfers.py``, loaded from the file as the scheduler would), alternating between two
``TRANSFERS_HOME``s that stand for two worker machines. Only Airflow's task context (which DAG run
this is) is stood in for: the wrapper is called outside a running task.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from tests.integration.conftest import LOGICAL_DATE, conn_json, read_delivery, throwaway_pg_database
from tests.support.s3 import moto_s3, s3_bucket
from transfers import pipeline
from transfers.pipeline import Step
from transfers.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

FLOW = "mash-referrals.A"
PARTNER = "south-yorkshire-police"
PREFIX = "work"


@pytest.fixture
def store(world):
    """``(client, bucket, conn)``: an empty bucket the work store lives in, reached through ``work_s3``."""
    with moto_s3("work_s3") as conn, s3_bucket(conn, "isp-work", versioned=False) as (client, bucket):
        yield client, bucket, conn


@pytest.fixture
def ledger_url():
    with throwaway_pg_database("isp_workstore_ledger") as (url, _name):
        yield url


@pytest.fixture
def workers(world, store, ledger_url, tmp_path, monkeypatch):
    """Two worker homes and the DAG file loaded for them, in the environment a deployment sets."""
    _client, bucket, conn = store
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TRANSFERS_CONFIG_DIR": str(world.settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(world.settings.keys),
        "TRANSFERS_LEDGER_URL": ledger_url,
        "TRANSFERS_WORK_STORE": f"s3://{bucket}/{PREFIX}",
        "TRANSFERS_WORK_STORE_CONN_ID": "work_s3",
        "TRANSFERS_DELIVERY_MAX_ROWS": "15",  # 40 rows: 3 parts, each encrypted by a task of its own
        "AIRFLOW_CONN_WORK_S3": conn_json(conn),
        "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": world.staging_key,
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": world.secrets["mash_pseudonym_key"],
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": world.secrets["transfers_signing_key"],
    }
    for conn_id, info in world.connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(info)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    import airflow.sdk

    # The one stand-in: the task context Airflow gives a running task (which DAG run holds the run lock).
    monkeypatch.setattr(airflow.sdk, "get_current_context",
                        lambda: {"dag": SimpleNamespace(dag_id=FLOW), "run_id": "scheduled__workstore-test"})
    spec = importlib.util.spec_from_file_location(f"isp_transfers_{uuid.uuid4().hex[:6]}",
                                                  PROJECT_ROOT / "dags" / "isp_transfers.py")
    assert spec and spec.loader
    dag_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_file)
    homes = [tmp_path / "worker-1", tmp_path / "worker-2"]
    return SimpleNamespace(dag_file=dag_file, homes=homes, bucket=bucket, monkeypatch=monkeypatch)


def run_task(workers: SimpleNamespace, home: Path, step: Step | str, partner: str | None = None, *call: Any,
             outbox_parts: bool = True):
    """One task of flow A's DAG run on the worker whose home is ``home``, through the DAG's own wrapper.

    ``call`` (a mapped step's plan, part or seal function, and its arguments) and ``outbox_parts`` as the DAG's
    mapped tasks pass them.
    """
    dag_file: ModuleType = workers.dag_file
    if isinstance(step, str):
        step = next(s for s in pipeline.STEPS if s.name == step)
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(home))
    start = datetime.combine(LOGICAL_DATE, time(12), tzinfo=UTC)  # the same day on the flow's London clock
    return dag_file._step(FLOW, start, step, partner, *call, outbox_parts=outbox_parts)


def working_files(home: Path) -> list[Path]:
    """Files a worker holds in a run's working places (staging, outbox, running markers, a task's checkout)."""
    return sorted(p for place in ("runs", "outbox", "running", "tasks") for p in (home / place).rglob("*") if p.is_file())


def keys(client, bucket: str, under: str = "") -> dict[str, str]:
    """``{key: etag}`` of every object under ``under``."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=under):
        found.update({item["Key"]: item["ETag"] for item in page.get("Contents", [])})
    return found


def send(workers: SimpleNamespace) -> Iterator[str]:
    """Flow A's send tasks as its DAG runs them, each on the other worker; yields each task's name once it ran.

    Quality, prepare and encrypt are mapped steps: a plan, one task per part (encrypt: 3 parts of 15 rows
    at most), and the seal, each on the next worker, as a CeleryExecutor may place them.
    """
    homes = itertools.cycle(workers.homes)
    for name, partner in (("check_agreement", None), ("extract", None), ("quality", None), ("prepare", None),
                          ("encrypt", PARTNER), ("deliver", PARTNER), ("notify", None)):
        step = next(s for s in pipeline.STEPS if s.name == name)
        if step.mapped is None:
            run_task(workers, next(homes), step, partner)
            yield name
            continue
        planned = [dict(p) for p in run_task(workers, next(homes), step, partner, step.mapped.plan)]
        yield f"{name}.plan"
        made = []
        for part in planned:
            made.append(dict(run_task(workers, next(homes), step, partner, step.mapped.part, part,
                                      outbox_parts=False)))
            yield f"{name}.part"
        run_task(workers, next(homes), step, partner, step.mapped.seal, planned, made)
        yield f"{name}.seal"


def test_each_step_on_another_worker_delivers_a_delivery_gpg_decrypts_and_leaves_nothing_behind(
        world, store, workers, gpg_partner):
    from transfers.workstore.objects import WorkObjects

    client, bucket, _conn = store
    uploaded: list[str] = []  # the real upload, watched: which object went to the store in which order
    real_upload = WorkObjects.upload

    def watched(self, local, relative):
        real_upload(self, local, relative)
        if not relative.startswith(("logs/", "reports/")):  # a task's log part and reports: test_workstore_outputs
            uploaded.append(relative)

    workers.monkeypatch.setattr(WorkObjects, "upload", watched)
    ran = []
    for name in send(workers):
        ran.append(name)
        if name == "encrypt.seal":  # a manifest in the store means a complete, signed outbox there
            assert uploaded[-1].endswith(".manifest.json"), uploaded
        if name == "encrypt.part":
            assert [u.rsplit(".", 1)[-1] for u in uploaded] == ["pgp"], uploaded  # one part's file, nothing else
        if name in ("quality.part", "prepare.part"):  # its own results (and prepared rows), encrypted
            assert uploaded and all(u.endswith((".json.fernet", ".arrow.gcm")) for u in uploaded), uploaded
        # A worker keeps nothing between tasks, encrypted or not.
        assert working_files(workers.homes[0]) == working_files(workers.homes[1]) == [], name
        if name != "check_agreement":
            assert keys(client, bucket, f"{PREFIX}/runs/"), f"{name}: the run's staging is in the store"
        uploaded.clear()

    assert ran.count("encrypt.part") == 3  # the parts ran as separate tasks, on both workers
    assert ran.count("quality.part") >= 1 and ran.count("prepare.part") >= 1
    files = world.delivered("inbound/mash")
    assert len(files) == 3
    assert sum(len(read_delivery(gpg_partner, f)) for f in files) == 40  # every row, decrypted by the recipient's gpg
    outbox = keys(client, bucket, f"{PREFIX}/outbox/")
    assert f"{PREFIX}/outbox/mash-referrals/A/{LOGICAL_DATE}/{PARTNER}/mash-referrals_A_{LOGICAL_DATE}.manifest.json" \
        in outbox
    assert f"{PREFIX}/running/mash-referrals/A/{LOGICAL_DATE}.json" in keys(client, bucket)  # the run is going on

    run_task(workers, workers.homes[1], "cleanup")

    assert keys(client, bucket, f"{PREFIX}/runs/") == {}  # no staging object left
    assert keys(client, bucket, f"{PREFIX}/running/") == {}  # the run's marker went with it
    assert keys(client, bucket, f"{PREFIX}/outbox/") == outbox  # the sealed outbox stays, for retention
    assert working_files(workers.homes[0]) == working_files(workers.homes[1]) == []


def _failing(run, resolvers, ledger):
    """A step that changes the run's files (adds one, deletes one) and then fails."""
    from transfers.errors import SourceError

    (run.run_dir / "half-written.json.fernet").write_bytes(b"not for the store")
    next(p for p in run.run_dir.rglob("*") if p.is_file() and p.name != "half-written.json.fernet").unlink()
    raise SourceError("the source broke half-way")


def test_a_task_that_fails_uploads_nothing_and_leaves_nothing_local(world, store, workers):
    from airflow.sdk.exceptions import AirflowFailException

    client, bucket, _conn = store
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[1], "extract")
    before = {k: v for k, v in keys(client, bucket).items() if not k.startswith(f"{PREFIX}/logs/")}

    with pytest.raises(AirflowFailException, match="the source broke half-way"):
        run_task(workers, workers.homes[0], Step("quality", _failing, "failing"))

    # nothing added, nothing deleted, nothing changed (but the task's own part of the run's log)
    assert {k: v for k, v in keys(client, bucket).items() if not k.startswith(f"{PREFIX}/logs/")} == before
    assert working_files(workers.homes[0]) == []


def test_a_missing_bucket_is_a_clear_error_naming_the_bucket_and_the_connection(world, store, workers):
    from airflow.sdk.exceptions import AirflowFailException

    workers.monkeypatch.setenv("TRANSFERS_WORK_STORE", "s3://no-such-work-bucket/work")

    with pytest.raises(AirflowFailException) as failed:
        run_task(workers, workers.homes[0], "check_agreement")

    message = str(failed.value)
    assert "no-such-work-bucket" in message and "connection 'work_s3'" in message and "NoSuchBucket" in message
    assert working_files(workers.homes[0]) == []


def test_an_outbox_copy_in_the_store_past_its_period_is_purged_with_evidence_once_its_run_has_ended(
        world, store, workers):
    import hashlib
    from datetime import timedelta

    from transfers.ledger.records import Purged
    from transfers.retention import execute_purge, plan_purge
    from transfers.settings import Settings

    client, bucket, conn = store
    list(send(workers))
    outbox = keys(client, bucket, f"{PREFIX}/outbox/")
    digests = {f"s3://{bucket}/{key}": hashlib.sha256(client.get_object(Bucket=bucket, Key=key)["Body"].read())
               .hexdigest() for key in outbox}
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(workers.homes[0]))  # the retention DAG's worker
    settings = Settings()
    later = datetime.now(UTC) + timedelta(days=400)  # past retention.staging for every copy

    def connection(conn_id: str):
        return conn if conn_id == "work_s3" else world.connections[conn_id]

    with settings.open_ledger() as ledger:  # the run is still going on (its marker is in the store): held back
        items = plan_purge(settings, world.config, ledger, now=later, only_flow=FLOW, connection=connection)
        held = execute_purge(items, settings, world.config, ledger, connection, now=later)
    assert {i.path for i in items if i.place == "outbox"} == set(digests)
    assert held.deleted == 0 and len(held.held) >= len(digests)
    assert keys(client, bucket, f"{PREFIX}/outbox/") == outbox

    run_task(workers, workers.homes[1], "cleanup")
    with settings.open_ledger() as ledger:
        items = plan_purge(settings, world.config, ledger, now=later, only_flow=FLOW, connection=connection)
        report = execute_purge(items, settings, world.config, ledger, connection, now=later)
        purged = {p.path: p for p in ledger.records(Purged, flow=FLOW) if p.place == "outbox"}

    assert report.failed == []
    assert keys(client, bucket, f"{PREFIX}/outbox/") == {}
    assert {path: p.sha256 for path, p in purged.items()} == digests  # evidence of exactly what was deleted
    assert {(p.store, p.verified, str(p.logical_date), p.recipient) for p in purged.values()} == {
        ("s3", "no version or delete marker left (ListObjectVersions)", LOGICAL_DATE.isoformat(), PARTNER)}


def test_transfers_run_keeps_its_files_as_ever_and_leaves_the_sealed_outbox_in_the_store_too(world, store, ledger_url):
    from transfers.pipeline import FlowRun, run_flow

    client, bucket, conn = store
    world.connections["work_s3"] = conn
    settings = world.settings.model_copy(update={"work_store": f"s3://{bucket}/{PREFIX}",
                                                 "work_store_conn_id": "work_s3", "ledger_url": ledger_url})
    run = FlowRun(settings, world.config, world.config.flow(FLOW), LOGICAL_DATE, staging_key=world.staging_key)

    assert run_flow(run, world.resolvers())["status"] == "delivered"

    base = f"{PREFIX}/outbox/mash-referrals/A/{LOGICAL_DATE}/{PARTNER}/mash-referrals_A_{LOGICAL_DATE}"
    local = run.outbox_dir(run.recipient(PARTNER))
    sealed = {".csv.pgp", ".manifest.json", ".manifest.json.asc"}  # the part, the manifest and its signature
    assert set(keys(client, bucket, f"{PREFIX}/outbox/")) == {base + suffix for suffix in sealed}
    assert sorted(p.name for p in local.iterdir()) == sorted(f"mash-referrals_A_{LOGICAL_DATE}{s}" for s in sealed)
    assert keys(client, bucket, f"{PREFIX}/runs/") == {}


def test_two_tasks_of_one_run_at_once_on_one_worker_keep_apart_and_each_commits_only_its_own(world, store, workers):
    from transfers.pipeline import FlowRun
    from transfers.settings import Settings
    from transfers.workstore import task_files

    client, bucket, conn = store
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[0], "extract")
    staging = keys(client, bucket, f"{PREFIX}/runs/")
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(workers.homes[0]))
    run = FlowRun(Settings(), world.config, world.config.flow(FLOW), LOGICAL_DATE, staging_key=world.staging_key)
    outbox = f"{PREFIX}/outbox/mash-referrals/A/{LOGICAL_DATE}"

    with task_files(run, lambda _id: conn) as first:  # say encrypt for one recipient, then another beside it
        mine = first.outbox_dir(first.recipient(PARTNER))
        mine.mkdir(parents=True)
        (mine / "first.pgp").write_bytes(b"first's part")
        with task_files(run, lambda _id: conn) as second:
            assert second.run_dir != first.run_dir and second.run_dir.is_dir()  # its own checkout of the staging
            (second.outbox_dir(second.recipient(PARTNER)).parent / "other-partner").mkdir(parents=True)
            (second.outbox_dir(second.recipient(PARTNER)).parent / "other-partner" / "second.pgp").write_bytes(b"2")
        assert (mine / "first.pgp").read_bytes() == b"first's part"  # the other task's end took nothing of this one's
        assert f"{outbox}/other-partner/second.pgp" in keys(client, bucket)

    assert set(keys(client, bucket, f"{outbox}/")) == {f"{outbox}/{PARTNER}/first.pgp", f"{outbox}/other-partner/second.pgp"}
    assert keys(client, bucket, f"{PREFIX}/runs/") == staging  # neither deleted the staging the other saw
    assert working_files(workers.homes[0]) == []


def test_an_unreachable_store_is_retried_naming_the_bucket_and_connection_and_leaves_nothing(world, store, workers):
    from tests.support.airflow_server import free_port
    from transfers.errors import WorkStoreUnavailable

    _client, bucket, conn = store
    down = dict(conn.extra, endpoint_url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    workers.monkeypatch.setenv("AIRFLOW_CONN_WORK_S3", conn_json(dataclasses.replace(conn, extra=down)))

    with pytest.raises(WorkStoreUnavailable) as failed:  # retriable: the DAG's retry tries again
        run_task(workers, workers.homes[0], "check_agreement")

    assert f"s3://{bucket}/{PREFIX}/" in str(failed.value) and "connection 'work_s3'" in str(failed.value)
    assert working_files(workers.homes[0]) == []


def test_credentials_the_store_does_not_know_are_a_clear_error_naming_the_bucket_and_connection(world, store, workers):
    import moto.settings
    from airflow.sdk.exceptions import AirflowFailException

    _client, bucket, _conn = store
    # moto's server checks request signatures from now on: the connection's key is one it has never issued.
    workers.monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)

    with pytest.raises(AirflowFailException) as failed:  # terminal: a retry with the same key cannot succeed
        run_task(workers, workers.homes[0], "check_agreement")

    message = str(failed.value)
    assert f"bucket '{bucket}'" in message and "connection 'work_s3'" in message and "InvalidAccessKeyId" in message
    assert working_files(workers.homes[0]) == []
