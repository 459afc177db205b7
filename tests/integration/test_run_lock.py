"""Two ``transfers run`` processes for one (flow, logical date) at once, against real sshd, gpg and ledgers.

Each run is a real process started as a user would (``python -m transfers run``),
with the ledger in a throwaway PostgreSQL database or in SQLite under the home.
The second run must not start while the first holds the lock: it exits 4 saying
who runs since when, or, with ``--wait``, waits and then finds the work done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.integration.conftest import LOGICAL_DATE, conn_json, throwaway_pg_database
from tests.integration.test_dag_run import airflow_home  # noqa: F401 - Airflow metadata for the DAG test
from transfers.cli import EXIT_RUNNING
from transfers.errors import RunLocked
from transfers.ledger import Ledger
from transfers.runlock import RunLocks
from transfers.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

FLOW = "mash-referrals.A"
DS = LOGICAL_DATE.isoformat()


@pytest.fixture
def pg_ledger_url():
    """A throwaway PostgreSQL database for the ledger (and so the run locks)."""
    with throwaway_pg_database("isp_ledger") as (url, _name):
        yield url


def run_env(world, ledger_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "TRANSFERS_"))}
    env.update({
        "TRANSFERS_HOME": str(world.settings.home),
        "TRANSFERS_CONFIG_DIR": str(world.settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(world.settings.keys),
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": world.secrets["mash_pseudonym_key"],
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": world.secrets["transfers_signing_key"],
        "COLUMNS": "250",  # rich wraps nothing a test looks for
    })
    if ledger_url:
        env["TRANSFERS_LEDGER_URL"] = ledger_url
    for conn_id, conn in world.connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(conn)
    return env


def start(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "transfers", "run", FLOW, "--date", DS, *extra], env=env,
                            cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out + err


def wait_for_lock(url: str, proc: subprocess.Popen[str]) -> None:
    """Until the first run holds the lock: only then is the second one truly concurrent."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, finish(proc)[1][-3000:]
        try:
            locks = RunLocks(url)
            try:
                if locks.holder(FLOW, DS) is not None:
                    return
            finally:
                locks.close()
        except Exception:  # noqa: S110 - the first run may still be creating the database
            pass
        time.sleep(0.05)
    pytest.fail("the first run never took its lock")


def ledger_url_of(world, pg_url: str | None) -> str:
    world.settings.home.mkdir(parents=True, exist_ok=True)
    return pg_url or f"sqlite:///{(world.settings.home / 'ledger.db').resolve()}"


def assert_delivered_once(world, url: str) -> None:
    files = world.delivered("inbound/mash")
    assert [f.name for f in files] == [f"mash-referrals_A_{DS}.csv.pgp"]
    with Ledger(url) as ledger:
        disclosures = list(ledger.entries(kind="disclosure", flow=FLOW))
        assert len(disclosures) == 1
        assert ledger.verify().ok
    locks = RunLocks(url)
    try:
        assert locks.holder(FLOW, DS) is None  # released at the end of the run
    finally:
        locks.close()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_a_second_run_of_the_same_flow_and_date_exits_4_and_touches_nothing(world, request, backend):
    pg_url = request.getfixturevalue("pg_ledger_url") if backend == "postgresql" else None
    url = ledger_url_of(world, pg_url)
    env = run_env(world, pg_url)
    first = start(env)
    wait_for_lock(url, first)

    second_code, second_out = finish(start(env))
    first_code, first_out = finish(first)

    assert second_code == EXIT_RUNNING, second_out[-3000:]
    assert f"flow {FLOW} on {DS} is already running since" in second_out
    assert f"pid {first.pid} on host" in second_out  # names the run that holds it
    # The first run was not disturbed: its working files were its own to the end.
    assert first_code == 0, first_out[-3000:]
    assert "south-yorkshire-police: delivered" in first_out
    assert_delivered_once(world, url)


def test_a_second_run_told_to_wait_finds_the_work_done(world, pg_ledger_url):
    pg_url = pg_ledger_url
    url = ledger_url_of(world, pg_url)
    env = run_env(world, pg_url)
    first = start(env)
    wait_for_lock(url, first)

    second = start(env, "--wait", "240")
    first_code, first_out = finish(first)
    second_code, second_out = finish(second)

    assert first_code == 0, first_out[-3000:]
    assert second_code == 0, second_out[-3000:]
    assert "already delivered to every recipient; nothing sent" in second_out
    assert_delivered_once(world, url)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_the_lock_of_a_killed_run_is_taken_over_with_a_note(world, request, backend):
    """PostgreSQL drops the dead run's advisory lock; on SQLite its pid is gone: no wait for expiry."""
    pg_url = request.getfixturevalue("pg_ledger_url") if backend == "postgresql" else None
    url = ledger_url_of(world, pg_url)
    env = run_env(world, pg_url)
    killed = start(env)
    wait_for_lock(url, killed)
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=30)

    code, out = finish(start(env))

    assert code == 0, out[-3000:]
    assert "took over the lock of a run that stopped" in out
    assert f"pid {killed.pid}" in out
    assert_delivered_once(world, url)


@pytest.mark.airflow
def test_a_dag_run_takes_over_a_stale_lock_holds_it_and_releases_it_at_cleanup(world, sshd, request):
    """The DAG's tasks share one owner (its run id): taken by check_agreement, released by cleanup."""
    from datetime import UTC, datetime, timedelta

    from tests.integration.test_dag_run import _Recipient, airflow_env

    metadata = request.getfixturevalue("airflow_home")
    url = ledger_url_of(world, None)
    locks = RunLocks(url)
    try:  # a DAG run killed long ago left its lock
        locks.acquire("mash-referrals.B", DS, "dag:mash-referrals.B:killed-run")
        old = (datetime.now(UTC) - timedelta(seconds=locks.ttl + 60)).isoformat(timespec="seconds")
        with locks._begin() as conn:
            conn.execute(locks.table.update().values(heartbeat_at=old))
    finally:
        locks.close()

    recipient = _Recipient(world)  # returns the signed receipt the DAG's last sensor waits for
    recipient.start()
    try:
        result = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "mash-referrals.B", DS],
                                env=airflow_env(world, metadata), capture_output=True, text=True, timeout=600)
    finally:
        recipient.stop.set()
        recipient.join()

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "stale run lock taken over" in output and "killed-run" in output
    assert len(world.delivered("inbound/ed-attendances")) == 1
    locks = RunLocks(url)
    try:
        assert locks.holder("mash-referrals.B", DS) is None  # the cleanup teardown let go
    finally:
        locks.close()


def test_a_released_cli_lock_on_postgresql_is_free_at_once_for_another_process(pg_ledger_url):
    """The advisory lock goes with the row, not when the connection pool is finally closed."""
    from transfers.runlock import cli_owner

    first, second = RunLocks(pg_ledger_url), RunLocks(pg_ledger_url)
    try:
        owner = cli_owner()
        first.acquire(FLOW, DS, owner)
        with pytest.raises(RunLocked, match="already running since"):
            second.acquire(FLOW, DS, cli_owner())
        first.release(FLOW, DS, owner)  # first's engine (and its pool) is still open
        assert second.acquire(FLOW, DS, cli_owner()) is None
    finally:
        first.close()
        second.close()
