"""The task logs of a flow's successful send DAG run, as Airflow itself writes them.

``airflow dags test`` alone runs each task inside its own process, where nothing captures stderr; the
trouble this guards against (the supervisor records a task's stderr at ERROR) only shows when a task
runs under Airflow's supervisor. So the run here goes through the executor (``--use-executor``),
each task in a supervised process talking to a real ``airflow api-server`` (the Execution API), and
the task logs are the files Airflow writes under ``AIRFLOW_HOME/logs``: one JSON object a line.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.test_dag_run import _Recipient, airflow_env
from tests.support.airflow_server import free_port, serving, stop

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

FLOW = "mash-referrals.B"
PARTNER = "rotherham-childrens-services"
GX_NOISE = ("great_expectations", "Skipping registering function", "Multiple declarations of metric")


@pytest.fixture
def airflow(tmp_path: Path, world: Any) -> Iterator[dict[str, str]]:
    """A migrated AIRFLOW_HOME and its ``airflow api-server`` on a free port; the environment to run tasks in."""
    home = tmp_path / "airflow"
    home.mkdir()
    port = free_port()
    env = {
        **airflow_env(world, home),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),  # the API server and the task workers share it
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__CORE__PARALLELISM": "2",  # LocalExecutor forks this many workers: not 32 on two shared cores
        # Three parts, each encrypted by its own mapped task instance (encrypt_<partner>_part).
        "TRANSFERS_DELIVERY_MAX_ROWS": "10",
    }
    with serving(env, port, home / "api-server.log"):
        yield env


def _run_state(home: Path) -> str | None:
    with sqlite3.connect(home / "airflow.db") as db:
        row = db.execute("SELECT state FROM dag_run WHERE dag_id = ?", (FLOW,)).fetchone()
    return row[0] if row else None


def _run_through_the_executor(world: Any, env: dict[str, str]) -> str:
    """``airflow dags test --use-executor`` of the flow's send DAG; returns the run's final state.

    Once the run has finished, the command is ended if it has not ended itself: after the run, Airflow 3.3's
    ``dags test`` with LocalExecutor can wait on its idle workers for ever.
    """
    home = Path(env["AIRFLOW_HOME"])
    recipient = _Recipient(world)
    recipient.start()
    with (home / "dags-test.log").open("wb") as out:
        command = subprocess.Popen(
            [sys.executable, "-m", "airflow", "dags", "test", "--use-executor", FLOW, LOGICAL_DATE.isoformat()],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        for _ in range(2400):  # up to 20 minutes on shared cores; a run takes about one
            if command.poll() is not None or _run_state(home) in ("success", "failed"):
                break
            time.sleep(0.5)
        return _run_state(home) or f"no run ({(home / 'dags-test.log').read_text(errors='replace')[-3000:]})"
    finally:
        stop(command)
        recipient.stop.set()
        recipient.join()


def _task_logs(home: Path) -> dict[str, list[dict[str, Any]]]:
    """Each task's log lines as Airflow wrote them (every line a JSON object), by task id (``<id>[<i>]`` if mapped)."""
    logs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((home / "logs").rglob("attempt=*.log")):
        task_id = next(p for p in path.parts if p.startswith("task_id=")).removeprefix("task_id=")
        index = next((p.removeprefix("map_index=") for p in path.parts if p.startswith("map_index=")), "-1")
        key = task_id if index == "-1" else f"{task_id}[{index}]"
        logs[key] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return logs


def test_a_successful_run_s_task_logs_have_no_error_line_no_gx_noise_and_one_summary_line_per_stage(
    world, sshd, airflow
):
    home = Path(airflow["AIRFLOW_HOME"])

    state = _run_through_the_executor(world, airflow)

    assert state == "success", state
    logs = _task_logs(home)
    assert sorted(logs) == sorted(
        [
            "check_agreement",
            "extract",
            "quality",
            "quality_part[0]",  # 30 rows: one range of the extract
            "quality_seal",
            "prepare",
            "prepare_part[0]",
            "prepare_seal",
            f"encrypt_{PARTNER}",
            *(f"encrypt_{PARTNER}_part[{i}]" for i in range(3)),
            f"seal_{PARTNER}",
            f"deliver_{PARTNER}",
            f"await_receipt_{PARTNER}",
            "notify",
            "cleanup",
        ]
    )
    lines = [line for task_lines in logs.values() for line in task_lines]
    # Every line is at its own level: nothing is an error in a run that succeeded (a task's stderr would be)...
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert not any(line.get("logger") == "task.stderr" for line in lines)
    # ...no library warns (pandas, GX, paramiko, pgpy), and Great Expectations says nothing at all.
    assert [line for line in lines if line["level"] == "warning"] == []
    assert not [line for line in lines if any(noise in json.dumps(line) for noise in GX_NOISE)]
    assert not [line for line in lines if line.get("logger", "").startswith("paramiko")]  # 3 lines a connection

    # One summary line per stage, with this run's real counts (from the ledger and the delivered files).
    disclosure = next(iter(world.settings.open_ledger().entries(kind="disclosure"))).payload
    delivered = world.delivered("inbound/ed-attendances")
    pseudonymised = [n for n, spec in world.config.flow(FLOW).flow.fields.items() if spec.share == "pseudonymise"]

    def summary(task_id: str, event: str) -> dict[str, Any]:
        [line] = [line for line in logs[task_id] if line["event"] == event and line["logger"].startswith("transfers.")]
        assert line["level"] == "info" and line["flow"] == FLOW and line["logical_date"] == LOGICAL_DATE.isoformat()
        return line

    assert summary("check_agreement", "agreement live")["pending"] == [PARTNER]
    assert summary("extract", "extracted")["rows"] == 30
    assert summary("quality_part[0]", "quality part checked")["rows"] == 30
    quality = summary("quality_seal", "quality checked")  # the whole extract's outcome is the seal's
    assert (quality["rows"], quality["passed"], quality["held_back"], quality["blocked"]) == (30, 30, 0, [])
    assert quality["outcome"] == "passed" and quality["failing"] == []
    assert summary("prepare_part[0]", "prepare part done")["rows_in"] == 30
    prepared = summary("prepare_seal", "prepared")
    assert (prepared["rows_in"], prepared["sent"], prepared["left_out"]) == (30, disclosure["rows"], 0)
    assert prepared["pseudonymised"] == pseudonymised and pseudonymised
    for i, path in enumerate(delivered):
        part = summary(f"encrypt_{PARTNER}_part[{i}]", "part encrypted")
        assert (part["name"], part["rows"], part["size"]) == (path.name, 10, path.stat().st_size)
    encrypted = summary(f"seal_{PARTNER}", "encrypted")
    assert (encrypted["files"], encrypted["rows"]) == (len(delivered), 30) and len(delivered) == 3
    assert encrypted["bytes"] == sum(p.stat().st_size for p in delivered)
    sent = summary(f"deliver_{PARTNER}", "delivered")
    assert (sent["files"], sent["host"], sent["status"]) == (len(disclosure["files"]), disclosure["host"], "delivered")
    assert sent["rows"] == 30 and sent["recipient"] == PARTNER
    assert summary(f"await_receipt_{PARTNER}", "receipt verified")["status"] == "accepted"
    assert summary("notify", "notices sent")["sent"] == 0
    assert summary("cleanup", "working files removed")["folder"].endswith(LOGICAL_DATE.isoformat())
    # Nothing personal or secret in any line.
    text = "\n".join(json.dumps(line) for line in lines)
    assert world.secrets["mash_pseudonym_key"] not in text and world.staging_key not in text
    [source] = (world.root / "exports" / "ed").glob("*.csv")
    values = pd.read_csv(source, dtype=str)
    assert not [v for column in ("nhs_number", "postcode", "attendance_id") for v in values[column] if v in text]
