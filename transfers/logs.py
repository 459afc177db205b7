"""Structured logs that never carry record values or secrets.

Steps log names, counts and paths only. ``TRANSFERS_LOG_FORMAT=json`` gives one
JSON object a line for deployments; the default is readable console output.
Our loggers are wrapped, not configured globally: Airflow 3 configures
structlog for its own task logs and a global ``structlog.configure`` here would
take those over.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import structlog

# The run whose log file also gets each line: a flow run's own log, kept under
# <home>/logs and deleted on the flow's ``retention.logs`` period.
_run_log: ContextVar[Path | None] = ContextVar("transfers_run_log", default=None)


@contextmanager
def run_log(path: Path) -> Iterator[Path]:
    """Also append every log line written inside the block to ``path`` (0600, folder 0700)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    token = _run_log.set(path)
    try:
        yield path
    finally:
        _run_log.reset(token)


class _StderrLogger:
    """Writes to whatever ``sys.stderr`` is at call time.

    Binding the stream when the logger is made breaks under test runners and
    Airflow's task runner, which swap ``sys.stderr`` after modules are imported.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)
        path = _run_log.get()
        if path is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as fh:
                    fh.write(message + "\n")
            except OSError as exc:
                # A full disk must surface as the run's own error, not as a crash inside a log call;
                # the line already went to stderr (the task log).
                print(f"run log {path} not written: {exc.strerror or type(exc).__name__}", file=sys.stderr)

    debug = info = warning = error = critical = exception = msg


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    renderer = (
        structlog.processors.JSONRenderer()
        if os.environ.get("TRANSFERS_LOG_FORMAT") == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    level = logging.getLevelName(os.environ.get("TRANSFERS_LOG_LEVEL", "INFO").upper())
    return structlog.wrap_logger(
        _StderrLogger(),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level if isinstance(level, int) else logging.INFO),
        logger_name=name,
    )
