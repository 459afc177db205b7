"""A flow's send DAG on Airflow's CeleryExecutor with 1, then 2 Celery workers, against the floor (issue 16).

    uv run python bench/bench_workers.py ROWS [--workers 1 2] [--store s3|volume] [--part-rows N]

Builds what ``bench_e2e.py`` builds (its own functions): a source of ROWS distinct subjects in PostgreSQL, the
parties' gpg keys, a private sshd. Then, for each worker count, a fresh deployment
(``tests.support.celery_airflow``): a new PostgreSQL metadata database, a Redis broker database of its own, an
api-server, a scheduler, a dag-processor and N ``airflow celery worker --concurrency 1``, each with its own
``TRANSFERS_HOME`` (standing for its own machine); a fresh PostgreSQL ledger; the work store either moto's S3
server (``s3``, as the tests use it: a Python server inside this process) or a shared directory (``volume``);
the ledger's anchor beside it (a bucket, or a file in another directory). It triggers the flow's send DAG for
one date, waits for the run to end, and prints from Airflow's own records: the DAG run's wall time (its
start to its end), each stage's wall time (its first task instance's start to its last one's end: plan, mapped
parts and seal), how many mapped instances it had and which worker ran its task instances. A stand-in
recipient (a thread here) signs the receipt as soon as the manifest lands; the receipt sensor looks every
``POKE_SECONDS``. The floor (``psql \\copy | gpg | sftp``) runs after each measurement on the same rows.

The load average is printed before and after each measurement: the machine is shared. Everything the bench
starts is stopped and every database, bucket, broker database and directory it made is removed at the end.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # ``tests.support``: run as a script, only bench/ is on the path
    sys.path.insert(0, str(ROOT))

import bench_e2e  # noqa: E402
import e2e_airflow  # noqa: E402

from tests.integration.conftest import conn_json, throwaway_pg_database  # noqa: E402
from tests.support.celery_airflow import CeleryDeployment, celery_deployment, redis_db  # noqa: E402
from tests.support.s3 import moto_s3, s3_bucket  # noqa: E402
from transfers.devkit.gpg import GpgHome  # noqa: E402
from transfers.devkit.parties import make_parties  # noqa: E402
from transfers.pipeline import STEPS  # noqa: E402
from transfers.staging import new_staging_key  # noqa: E402

FLOW = bench_e2e.FLOW
POKE_SECONDS = "2"
RUN_TIMEOUT = 3 * 3600  # seconds; the bench fails with the logs' tails after this


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rows", type=int)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="a measurement per count (default 1 2)")
    parser.add_argument("--store", choices=("s3", "volume"), default="s3",
                        help="the work store: moto's S3 server in this process, or a shared directory")
    parser.add_argument("--part-rows", type=int, default=None,
                        help="TRANSFERS_PART_ROWS (rounded to whole staging batches of 50,000) and "
                             "TRANSFERS_DELIVERY_MAX_ROWS (default: the project's, 250,000 each)")
    args = parser.parse_args(argv)
    if args.rows < 1 or any(n < 1 for n in args.workers) or (args.part_rows is not None and args.part_rows < 1):
        parser.error("ROWS, --workers and --part-rows must be positive")
    return args


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Stage:
    wall: float
    instances: int  # mapped instances (0: not a mapped step)
    workers: Counter[str] = field(default_factory=Counter)  # task instances per worker


@dataclass
class Measured:
    workers: int
    wall: float
    stages: dict[str, Stage]
    floor: float
    load_before: str
    load_after: str
    delivered_bytes: int


def stage_of(partners: list[str]) -> dict[str, str]:
    """DAG task id -> the step (stage) it belongs to: a mapped step's plan, parts and seal are one stage."""
    out: dict[str, str] = {}
    for step in STEPS:
        for partner in partners if step.per_recipient else [None]:
            for task_id in step.task_ids(partner):
                out[task_id] = step.key(partner)
    return out


def stages(airflow: CeleryDeployment, run: str, partners: list[str]) -> tuple[float, dict[str, Stage]]:
    """The DAG run's wall time and each stage's, from the metadata database's start and end times."""
    (started, ended), = airflow.query("SELECT start_date, end_date FROM dag_run WHERE dag_id = :d AND run_id = :r",
                                      d=FLOW, r=run)
    rows = airflow.query("SELECT task_id, map_index, start_date, end_date, hostname FROM task_instance"
                         " WHERE dag_id = :d AND run_id = :r AND start_date IS NOT NULL", d=FLOW, r=run)
    names = stage_of(partners)
    spans: dict[str, list[Any]] = {}
    out: dict[str, Stage] = {}
    for task_id, index, start, end, host in sorted(rows, key=lambda r: r[2]):
        name = names.get(task_id, task_id)
        stage = out.setdefault(name, Stage(0.0, 0))
        stage.instances += index >= 0
        stage.workers[host or "?"] += 1
        span = spans.setdefault(name, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end or span[1])
    for name, (start, end) in spans.items():
        out[name].wall = (end - start).total_seconds()
    return (ended - started).total_seconds(), out


@contextmanager
def work_store(kind: str, place: Path) -> Iterator[dict[str, str]]:
    """The settings naming a work store and a ledger anchor outside every worker's home; removed after."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: no line per request
    if kind == "volume":
        (place / "store").mkdir(parents=True)
        (place / "anchor").mkdir()
        try:
            yield {"TRANSFERS_WORK_STORE": str(place / "store"),
                   "TRANSFERS_LEDGER_ANCHOR_URL": str(place / "anchor" / "ledger.head.json")}
        finally:
            shutil.rmtree(place, ignore_errors=True)
        return
    with (
        moto_s3("work_s3") as store,
        s3_bucket(store, "bench-work", versioned=False) as (_client, work_bucket),
        s3_bucket(store, "bench-anchor") as (_client2, anchor_bucket),
    ):
        yield {
            "TRANSFERS_WORK_STORE": f"s3://{work_bucket}/work",
            "TRANSFERS_WORK_STORE_CONN_ID": store.conn_id,
            f"AIRFLOW_CONN_{store.conn_id.upper()}": conn_json(store),
            "TRANSFERS_LEDGER_ANCHOR_URL": f"s3://{anchor_bucket}/ledger.head.json",
            # The anchor is read through boto3's standard chain, here pointed at moto's server.
            "AWS_ENDPOINT_URL_S3": str(store.extra["endpoint_url"]),
            "AWS_ACCESS_KEY_ID": str(store.login),
            "AWS_SECRET_ACCESS_KEY": str(store.password),
            "AWS_DEFAULT_REGION": str(store.extra["region_name"]),
        }


def wait_for_run(airflow: CeleryDeployment, run: str, workers: list[str]) -> str:
    """Poll the run until it ends, printing a progress line (task states) whenever they change."""
    shown = [""]
    started = time.monotonic()

    def ended() -> str | None:
        states = Counter(state or "not yet scheduled" for state, _host in airflow.task_instances(FLOW, run).values())
        line = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        if line != shown[0]:
            print(f"   {time.monotonic() - started:6.0f} s  {line}", flush=True)
            shown[0] = line
        state = airflow.run_state(FLOW, run)
        return state if state in ("success", "failed") else None

    return str(airflow.wait_for(ended, "the DAG run to end", timeout=RUN_TIMEOUT, logs=("scheduler", *workers)))


def measure(n: int, args: argparse.Namespace, base_env: dict[str, str], work: Path, sshd: Any, floor: Any,
            signing_key: str, partners: list[str]) -> Measured:
    name = f"{n}-worker{'s' if n > 1 else ''}"
    load_before = load()
    bench_e2e.say(f"{name}: a fresh deployment ({args.store} work store); {load_before}")
    with ExitStack() as stack:
        metadata_url, _ = stack.enter_context(throwaway_pg_database("bench_workers_meta"))
        ledger_url, _ = stack.enter_context(throwaway_pg_database("bench_workers_ledger"))
        store = stack.enter_context(work_store(args.store, work / f"store-{n}"))
        broker = stack.enter_context(redis_db())
        # The sending party receives flows too: with several workers its received store is PostgreSQL (the
        # ledger's database here) and its inbox a folder every worker reaches (nothing arrives there in the bench).
        env = {**base_env, **store, "TRANSFERS_LEDGER_URL": ledger_url, "TRANSFERS_WORKERS": "many",
               "TRANSFERS_STORE_URL": ledger_url, "TRANSFERS_INBOX_DIR": str(work / f"inbox-{n}")}
        started = time.perf_counter()
        airflow = stack.enter_context(celery_deployment(work / f"airflow-{n}", metadata_url, broker, env))
        workers = [f"worker-{i}" for i in range(1, n + 1)]
        homes = [work / f"home-{n}-{w}" for w in workers]
        for home in homes:
            stack.callback(shutil.rmtree, home, ignore_errors=True)
        for worker, home in zip(workers, homes, strict=True):
            airflow.start_worker(worker, home)
        stack.enter_context(e2e_airflow.recipient_standin(sshd.root / "inbound", signing_key))
        run = airflow.trigger(FLOW, f"{base_env['BENCH_DAY']}T00:00:00Z")
        bench_e2e.say(f"{name}: deployment up and the DAG parsed in {time.perf_counter() - started:.1f} s; "
                      f"run {run} triggered")
        state = wait_for_run(airflow, run, workers)
        if state != "success":
            failed = {t: s for t, (s, _h) in airflow.task_instances(FLOW, run).items() if s != "success"}
            raise SystemExit(f"{name}: the run ended {state}: {failed}\n{airflow.tails('scheduler', *workers)}")
        wall, by_stage = stages(airflow, run, partners)
    remote = sshd.root / "inbound"
    delivered = sum(p.stat().st_size for p in remote.rglob("*.pgp"))
    if not delivered:
        raise SystemExit(f"{name}: the run succeeded but delivered nothing")
    shutil.rmtree(remote)  # the next measurement is a first delivery too
    load_after = load()
    floor_run = bench_e2e.run_floor(floor)
    bench_e2e.say(f"{name}: DAG run {wall:.1f} s, floor {floor_run.wall:.2f} s; {load_after} (before the floor)")
    measured = Measured(n, wall, by_stage, floor_run.wall, load_before, load_after, delivered)
    report([measured])
    return measured


def report(results: list[Measured]) -> None:
    for m in results:
        print(f"\n{m.workers} worker(s): DAG run {m.wall:.1f} s (Airflow's dag_run start to end); floor {m.floor:.2f} s;"
              f" delivered {m.delivered_bytes / 1e6:.1f} MB; {m.load_before} before, {m.load_after} after")
        print(f"   {'stage':<38}{'wall':>9}{'mapped':>8}   task instances per worker")
        for name, s in m.stages.items():
            per = ", ".join(f"{host} {count}" for host, count in sorted(s.workers.items()))
            print(f"   {name:<38}{s.wall:>8.1f}s{s.instances or '':>8}   {per}")
    if len(results) > 1:
        print("\nsummary: " + "; ".join(f"{m.workers} worker(s) {m.wall:.1f} s" for m in results)
              + f"; floor {', '.join(f'{m.floor:.2f} s' for m in results)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import redis

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"bench_workers needs Redis on 127.0.0.1:6379 (the Celery broker): {exc}") from None
    missing = [tool for tool in ("psql", "gpg", "sftp", "ssh-keygen") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"bench_workers needs {', '.join(missing)} on PATH")
    today = datetime.now(UTC).date()
    day = (today - timedelta(days=1)).isoformat()
    role = f"bench_workers_{uuid.uuid4().hex[:10]}"
    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    bench_e2e.adopt_children()  # the floor's processes are reaped with wait4
    results: list[Measured] = []
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        bench_e2e.say(f"{FLOW}, {args.rows:,} rows, each a distinct subject; logical date {day}; workers "
                      f"{args.workers}; work store {args.store}; work dir {work}")
        started = time.perf_counter()
        try:
            width = bench_e2e.make_source(args.rows, day, role)
        finally:
            stack.callback(bench_e2e.drop_source, role)
        bench_e2e.say(f"{args.rows:,} rows generated in PostgreSQL in {time.perf_counter() - started:.1f} s")
        gpg = GpgHome(work / "gnupg")
        stack.callback(gpg.close)
        parties, config_dir = make_parties(work / "parties", gpg, today)
        if width > 6:
            bench_e2e.widen_record_keys(config_dir, width, [p.env for p in parties.values()])
        sshd = stack.enter_context(bench_e2e.run_sshd(work / "sshd"))
        sender = parties[bench_e2e.SENDER]
        recipient = next(p for p in parties.values() if FLOW in p.receives)
        assert recipient.decryption_fingerprint is not None
        project = bench_e2e.project_env(sender, sshd, role)
        # Only the deployment's own settings: each worker has its own TRANSFERS_HOME, Airflow its own home.
        base_env = {k: v for k, v in project.items() if k.startswith(("TRANSFERS_", "AIRFLOW_"))
                    and k not in ("TRANSFERS_HOME", "AIRFLOW_HOME")}
        base_env |= {"BENCH_DAY": day, "TRANSFERS_POKE_SECONDS": POKE_SECONDS,
                     "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": new_staging_key()}
        if args.part_rows:
            base_env |= {"TRANSFERS_PART_ROWS": str(args.part_rows), "TRANSFERS_DELIVERY_MAX_ROWS": str(args.part_rows)}
        floor = bench_e2e.make_floor(work, sshd, gpg, recipient.decryption_fingerprint, sender.signing_fingerprint,
                                     role, (config_dir / "sql" / "mash_referrals.sql").read_text(), day)
        partners = [p.id for p in parties.values() if FLOW in p.receives]
        for n in args.workers:
            results.append(measure(n, args, base_env, work, sshd, floor,
                                   recipient.env["AIRFLOW_VAR_TRANSFERS_SIGNING_KEY"], partners))
        print(f"\n== {args.rows:,} rows, work store {args.store} ==")
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
