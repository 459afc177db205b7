from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from transfers.logs import get_logger, run_log


def test_lines_inside_a_run_also_go_to_its_log_file_and_no_others(tmp_path):
    log = get_logger("transfers.test")
    path = tmp_path / "logs" / "agreement" / "A" / "2026-11-24.log"

    log.info("before the run")
    with run_log(path):
        log.info("extracted", rows=3)
        log.debug("below the level")
    log.info("after the run")

    text = path.read_text()
    assert "extracted" in text and "rows=3" in text
    assert "before the run" not in text and "after the run" not in text and "below the level" not in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter: logging there is as a process that never configured it finds it."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TRANSFERS_", "AIRFLOW_"))}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


STEP_LINES = """
from transfers.logs import get_logger
log = get_logger("transfers.steps.quality")
log.debug("per batch", batch=1)
log.info("quality checked", rows=30)
log.warning("rows held back", held_back=2)
"""


def test_outside_airflow_lines_go_to_stderr_as_readable_console_lines():
    done = _python(STEP_LINES)

    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr  # info and up, by default
    assert "[info     ] quality checked" in lines[0] and "[transfers.steps.quality] rows=30" in lines[0]
    assert "[warning  ] rows held back" in lines[1] and "held_back=2" in lines[1]
    assert done.stdout == ""


def test_transfers_log_format_json_gives_one_json_object_a_line_and_the_level_is_settable():
    done = _python(STEP_LINES, TRANSFERS_LOG_FORMAT="json", TRANSFERS_LOG_LEVEL="debug")

    events = [json.loads(line) for line in done.stderr.splitlines()]
    assert [(e["level"], e["event"]) for e in events] == [
        ("debug", "per batch"),
        ("info", "quality checked"),
        ("warning", "rows held back"),
    ]
    assert events[1]["rows"] == 30 and events[1]["logger"] == "transfers.steps.quality"


# What Airflow 3's task runner does before it runs a task: ``_configure_logs_over_json_channel`` sends every
# ``logging``/structlog record as a JSON line with its level over a socket to the supervisor. The supervisor
# records the task's stderr at ERROR, whatever it says. A pipe stands in for the socket (no supervisor here).
IN_A_TASK = """
import os, sys
from pathlib import Path
read, write = os.pipe()
from airflow.sdk.execution_time.supervisor import _configure_logs_over_json_channel
_configure_logs_over_json_channel(write)
from transfers.logs import get_logger, run_log
with run_log(Path(sys.argv[1])):
    get_logger("transfers.steps.cleanup").warning("prepared subject rows kept", error="OSError")
    get_logger("transfers.steps.extract").info("extracted", rows=30)
os.close(write)
sys.stdout.write(os.read(read, 1 << 20).decode())
"""


def test_in_an_airflow_task_a_step_s_warning_reaches_the_supervisor_at_warning_and_nothing_goes_to_stderr(tmp_path):
    done = _python(IN_A_TASK, str(tmp_path / "run.log"))

    events = [json.loads(line) for line in done.stdout.splitlines()]
    by_event = {e["event"]: e for e in events}
    kept = by_event["prepared subject rows kept"]
    assert kept["level"] == "warning" and kept["logger"] == "transfers.steps.cleanup" and kept["error"] == "OSError"
    assert by_event["extracted"]["level"] == "info" and by_event["extracted"]["rows"] == 30
    assert "prepared subject rows kept" not in done.stderr and "extracted" not in done.stderr
    # The run's own log still gets every line.
    text = (tmp_path / "run.log").read_text()
    assert "prepared subject rows kept" in text and "rows=30" in text


def test_the_cli_keeps_its_lines_on_stderr_when_airflow_s_import_has_put_a_handler_on_the_root_logger():
    done = _python("""
import logging, sys
logging.basicConfig(stream=sys.stdout, level=logging.INFO)  # as Airflow's import does, to stdout
from transfers.logs import get_logger, log_to_stderr
log_to_stderr()
get_logger("transfers.steps.extract").info("extracted", rows=30)
""")

    assert "extracted" in done.stderr and "extracted" not in done.stdout


def test_a_plain_logging_handler_shows_the_event_and_its_fields_as_text(caplog):
    get_logger("transfers.steps.extract").info("extracted", rows=30, flow="mash-referrals.B")

    [record] = [r for r in caplog.records if r.name == "transfers.steps.extract"]
    assert record.levelname == "INFO"
    assert record.getMessage() == "extracted rows=30 flow='mash-referrals.B'"
