"""The (flow, logical date) run lock on SQLite: who may take it, when it is stale, how it is released."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from transfers.errors import RetriableError, RunLocked
from transfers.runlock import RunLocks, cli_owner, dag_owner, hold

FLOW, DS = "mash-referrals.A", "2026-05-01"


@pytest.fixture
def url(tmp_path):
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def locks(url):
    opened = RunLocks(url)
    yield opened
    opened.close()


def test_a_second_owner_is_refused_naming_the_holder_and_since_when(locks):
    first = cli_owner()
    assert locks.acquire(FLOW, DS, first) is None

    with pytest.raises(RunLocked) as caught:
        locks.acquire(FLOW, DS, dag_owner("mash-referrals.A", "scheduled__2026-05-01"))

    message = str(caught.value)
    holder = locks.holder(FLOW, DS)
    assert message.startswith(f"flow {FLOW} on {DS} is already running since "
                              f"{holder.started_at:%Y-%m-%d %H:%M:%S} UTC (cli run pid ")
    assert f"transfers unlock {FLOW} --date {DS}" in message
    assert isinstance(caught.value, RetriableError)  # a DAG retry later finds the work done
    assert locks.acquire("mash-referrals.B", DS, dag_owner("x", "y")) is None  # other pairs are free


def test_the_tasks_of_one_dag_run_share_its_lock_and_cleanup_releases_it(url, locks):
    owner = dag_owner("mash-referrals.A", "manual__1")
    with hold(url, FLOW, DS, owner, release=False):  # the first task
        pass
    with pytest.raises(ValueError), hold(url, FLOW, DS, owner, release=False, release_on_error=False):
        raise ValueError("a later task fails; its retry and the cleanup still belong to this run")
    assert locks.holder(FLOW, DS).owner == owner
    with pytest.raises(RunLocked):
        locks.acquire(FLOW, DS, cli_owner())
    with hold(url, FLOW, DS, owner, release=True):  # cleanup
        pass
    assert locks.holder(FLOW, DS) is None


def test_a_cleanup_of_another_run_is_refused_before_it_touches_anything(url, locks):
    locks.acquire(FLOW, DS, cli_owner())
    ran = []
    with pytest.raises(RunLocked), hold(url, FLOW, DS, dag_owner("d", "r"), release=True):
        ran.append("cleanup")
    assert ran == []
    assert locks.holder(FLOW, DS).is_cli


def test_a_cli_run_releases_its_lock_even_when_it_fails(url, locks):
    with pytest.raises(RuntimeError), hold(url, FLOW, DS, cli_owner()):
        raise RuntimeError("the run failed")
    assert locks.holder(FLOW, DS) is None


def test_a_lock_not_refreshed_within_its_ttl_is_taken_over(url, locks):
    owner = dag_owner("d", "killed")
    locks.acquire(FLOW, DS, owner)
    old = (datetime.now(UTC) - timedelta(seconds=locks.ttl + 5)).isoformat(timespec="seconds")
    with locks._begin() as conn:
        conn.execute(locks.table.update().values(heartbeat_at=old))

    stale = locks.acquire(FLOW, DS, cli_owner())

    assert stale is not None and stale.owner == owner
    assert locks.holder(FLOW, DS).is_cli


def test_a_cli_lock_whose_process_is_gone_is_taken_over_at_once(url, locks):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(gone.stdout)
    locks.acquire(FLOW, DS, "cli:dead")
    with locks._begin() as conn:
        conn.execute(locks.table.update().values(pid=pid))

    stale = locks.acquire(FLOW, DS, cli_owner())

    assert stale is not None and stale.pid == pid


def test_waiting_gives_up_after_the_wait_with_the_same_message(url, locks):
    locks.acquire(FLOW, DS, cli_owner())
    with pytest.raises(RunLocked, match="already running since"), hold(url, FLOW, DS, dag_owner("d", "r"), wait=0.3):
        pass


def test_unlock_refuses_a_live_lock_and_removes_a_stale_one(url, locks, tmp_path, monkeypatch):
    from transfers.cli import EXIT_RUNNING, app

    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path))
    owner = dag_owner("d", "r")
    locks.acquire(FLOW, DS, owner)
    runner = CliRunner()

    refused = runner.invoke(app, ["unlock", FLOW, "--date", DS], catch_exceptions=False)
    assert refused.exit_code == EXIT_RUNNING
    assert "may still be running" in refused.output
    assert locks.holder(FLOW, DS) is not None

    old = (datetime.now(UTC) - timedelta(days=1)).isoformat(timespec="seconds")
    with locks._begin() as conn:
        conn.execute(locks.table.update().values(heartbeat_at=old))
    removed = runner.invoke(app, ["unlock", FLOW, "--date", DS], catch_exceptions=False)
    assert removed.exit_code == 0, removed.output
    assert "removed" in removed.output
    assert locks.holder(FLOW, DS) is None
