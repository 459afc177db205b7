"""A real Airflow 3 deployment with the CeleryExecutor, on this machine, for tests.

Metadata and the Celery result backend in a PostgreSQL database the caller made; the broker a
Redis database claimed here (``redis_db``) and flushed after. Processes, each in its own process
group and killed with it whatever happens: ``airflow api-server`` (the workers' task supervisors
report to its Execution API), ``airflow scheduler``, ``airflow dag-processor`` and any number of
``airflow celery worker --concurrency 1``, each started with its own environment (its own
``TRANSFERS_HOME``, standing for its own machine). Airflow records, on each task instance, the
hostname ``worker_hostname`` returns: the name the test gave that worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.airflow_server import airflow_env, free_port, serving, stop
from transfers.settings import PROJECT_ROOT

#: The variable ``worker_hostname`` reads: set per worker, so each records its own name.
WORKER_NAME_VAR = "ISP_TEST_WORKER_NAME"
REDIS = "127.0.0.1:6379"
_CLAIM = "isp-transfers-test:claimed"
_ADMIN = "admin"


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable`` in the test's processes: the name the test gave this one."""
    return os.environ.get(WORKER_NAME_VAR, "not-a-worker")


@contextmanager
def redis_db() -> Iterator[int]:
    """A Redis database number on 127.0.0.1:6379 that holds nothing and no one else claimed; flushed after.

    The claim is a key in the database itself (``SET NX``), so two tests (or helpers) picking at once do
    not share a broker: Celery only ever adds its own keys beside it.
    """
    import redis

    for number in range(15, 0, -1):  # db 0, everyone's default, is left alone
        client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_timeout=10)
        try:
            if client.dbsize() == 0 and client.set(_CLAIM, str(os.getpid()), nx=True, ex=3 * 3600):
                if client.dbsize() == 1:  # nothing slipped in between the look and the claim
                    break
                client.delete(_CLAIM)
        finally:
            client.close()
    else:
        raise RuntimeError(f"Redis on {REDIS}: every database 1-15 is in use; none free for a test broker")
    try:
        yield number
    finally:
        client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_timeout=10)
        try:
            client.flushdb()
        finally:
            client.close()


@dataclass
class CeleryDeployment:
    """The running deployment: start workers, read task instances, trigger runs, show process logs."""

    env: dict[str, str] = field(repr=False)  # holds the JWT secret and the caller's secrets: never printed
    home: Path
    metadata_url: str
    api_url: str
    password: str = field(repr=False)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)
    stopped: set[str] = field(default_factory=set)  # stopped on purpose (warm_stop): their exit is no failure

    def start(self, name: str, args: list[str], env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """``airflow <args>`` as process ``name`` (its own process group, output in ``home/<name>.log``)."""
        log = self.home / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env={**self.env, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name], self.logs[name] = process, log
        return process

    def start_worker(self, name: str, transfers_home: Path, **extra: str) -> subprocess.Popen[bytes]:
        """``airflow celery worker --concurrency 1`` named ``name`` (Celery's and the recorded hostname).

        Its own task logs folder, no log server (no fixed port 8793 taken on a shared machine).
        """
        logs = self.home / name / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            WORKER_NAME_VAR: name,
            "TRANSFERS_HOME": str(transfers_home),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(logs),
            **extra,
        }
        return self.start(
            name,
            ["celery", "worker", "--concurrency", "1", "--celery-hostname", f"{name}@isp-test", "--skip-serve-logs"],
            env,
        )

    def warm_stop(self, name: str) -> None:
        """Celery's warm shutdown of worker ``name``: it takes no new task and ends after the one it is running.

        SIGTERM to the worker's main process alone: its pool child, running the task, must not get it too.
        """
        self.stopped.add(name)
        os.kill(self.processes[name].pid, signal.SIGTERM)

    def query(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.metadata_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, tuple[str | None, str | None]]:
        """task id (``id[i]`` for a mapped task's instance ``i``) -> (state, hostname of the worker that ran it),
        in one run of ``dag_id``."""
        rows = self.query(
            "SELECT task_id, map_index, state, hostname FROM task_instance"
            " WHERE dag_id = :dag_id AND run_id = :run_id",
            dag_id=dag_id, run_id=run_id,
        )
        return {(task_id if index < 0 else f"{task_id}[{index}]"): (state, hostname or None)
                for task_id, index, state, hostname in rows}

    def run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = :dag_id AND run_id = :run_id",
                          dag_id=dag_id, run_id=run_id)
        return rows[0][0] if rows else None

    def trigger(self, dag_id: str, logical_date: str) -> str:
        """``POST /api/v2/dags/<dag_id>/dagRuns`` for ``logical_date`` once the DAG is parsed; the run id."""
        def parsed() -> bool:
            errors = self.query("SELECT stacktrace FROM import_error")
            if errors:  # the DAG file refused this deployment (or broke): say why at once
                raise AssertionError(f"DAG file import error: {_redact(str(errors[0][0])[-3000:], self.env)}")
            return bool(self.query("SELECT 1 FROM serialized_dag WHERE dag_id = :d", d=dag_id))

        self.wait_for(
            parsed,
            f"the dag-processor to parse DAG {dag_id}",
            timeout=300,
            logs=("dag-processor",),
        )
        body = self._api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": logical_date})
        return str(body["dag_run_id"])

    def wait_for(
        self, condition: Callable[[], Any], what: str, *, timeout: float, logs: tuple[str, ...] = ()
    ) -> Any:
        """Poll ``condition`` every half second until it is truthy (returned); fail after ``timeout`` seconds,
        or at once if a process of the deployment exited, with the tail of ``logs`` (and of any that exited)."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            exited = [n for n, p in self.processes.items() if p.poll() is not None and n not in self.stopped]
            if exited or time.monotonic() > deadline:
                why = f"exited: {', '.join(exited)}" if exited else f"not within {timeout:.0f} s"
                raise AssertionError(f"waiting for {what}: {why}\n{self.tails(*logs, *exited)}")
            time.sleep(0.5)

    def tails(self, *names: str, chars: int = 3000) -> str:
        """The last ``chars`` of each named process's log (all, if none named), for a failure message."""
        parts = []
        for name in names or tuple(self.logs):
            text = self.logs[name].read_text(errors="replace") if self.logs[name].exists() else ""
            parts.append(f"--- {name} ({self.logs[name]}) ---\n{_redact(text[-chars:], self.env)}")
        return "\n".join(parts)

    def _api(self, method: str, path: str, body: Mapping[str, Any]) -> Any:
        token_request = urllib.request.Request(
            f"{self.api_url}/auth/token",
            data=json.dumps({"username": _ADMIN, "password": self.password}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(token_request, timeout=30) as response:
            token = json.loads(response.read())["access_token"]
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:1000]!r}") from None


def _redact(text: str, env: Mapping[str, str]) -> str:
    """``text`` without the value of any secret-looking setting in ``env`` (keys, passwords, tokens)."""
    for name, value in env.items():
        secret = ("KEY", "SECRET", "PASSWORD", "TOKEN", "AIRFLOW_VAR_", "AIRFLOW_CONN_")
        if len(value) >= 8 and any(w in name for w in secret):
            text = text.replace(value, "***")
    return text


@contextmanager
def celery_deployment(home: Path, metadata_url: str, broker_db: int, extra: Mapping[str, str]) -> Iterator[
    CeleryDeployment
]:
    """Migrate ``metadata_url`` (an empty PostgreSQL database) and run an api-server, a scheduler and a
    dag-processor for the project's ``dags/`` until the block ends; workers are started by the caller.

    ``extra``: the environment every process shares (config, connections, variables), as AIRFLOW_/TRANSFERS_
    variables; none of this process's own leak in. Every process is stopped (its whole group) at the end.
    """
    home.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    (home / "passwords.json").write_text(json.dumps({_ADMIN: password}))
    (home / "dags").mkdir(exist_ok=True)
    port = free_port()
    database = metadata_url.split("://", 1)[1]  # postgres@127.0.0.1:5432/<name>
    env = airflow_env(
        home,
        {_ADMIN: "admin"},
        {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            # No scheduled runs (each DAG's latest night would run, or queue ahead of the test's): only triggered.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://{database}",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS}/{broker_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{database}",
            # A task is redelivered only after this long unacknowledged: longer than any task here.
            "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # Processes that serve logs (none should: workers skip it) must not take the fixed 8793.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
            **extra,
        },
    )
    deployment = CeleryDeployment(env, home, f"postgresql+psycopg2://{database}", f"http://127.0.0.1:{port}",
                                  password)
    deployment.logs["api-server"] = home / "api-server.log"
    try:
        with serving(env, port, home / "api-server.log"):
            deployment.start("scheduler", ["scheduler"])
            deployment.start("dag-processor", ["dag-processor"])
            yield deployment
    finally:
        for process in deployment.processes.values():
            with contextlib.suppress(Exception):
                stop(process)
        shutil.rmtree(home, ignore_errors=True)  # logs and task logs: a failure's message has their tails
