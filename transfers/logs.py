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

import structlog


class _StderrLogger:
    """Writes to whatever ``sys.stderr`` is at call time.

    Binding the stream when the logger is made breaks under test runners and
    Airflow's task runner, which swap ``sys.stderr`` after modules are imported.
    """

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

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
