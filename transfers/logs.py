"""Structured logs that never carry record values or secrets.

Steps log names, counts and paths only, through structlog on top of the standard
``logging`` module (logger ``transfers.<module>``), so whoever runs the code
decides where lines go:

- **In an Airflow task** the task runner has configured ``logging`` (its root
  handler sends each record to the supervisor as JSON with its level), so a
  line is an info, warning or error line in the task log. Writing to stderr
  instead would make every line an ERROR: the supervisor records a task's
  stderr at that level.
- **In the CLI** (:func:`log_to_stderr`) and wherever nothing else handles
  them, lines go to stderr, readable console lines, or one JSON object a line
  with ``TRANSFERS_LOG_FORMAT=json``.
- **Inside** :func:`run_log` every line is also appended to the run's own file.

Nothing here configures logging globally: Airflow 3 configures structlog and
the root logger for its own task logs, and a ``structlog.configure`` or root
handler here would take those over. Only the ``transfers`` logger is touched:
its level (``TRANSFERS_LOG_LEVEL``, default INFO) and one handler that writes
to stderr only when no other handler would see the record.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import structlog

__all__ = ["Progress", "get_logger", "log_to_stderr", "run_log"]

ROOT = "transfers"

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


_JSON = structlog.processors.JSONRenderer()
_CONSOLE = structlog.dev.ConsoleRenderer(colors=False)


def _render(logger: Any, method: str, event: MutableMapping[str, Any]) -> str:
    """One line as today's CLI shows it: console, or JSON with ``TRANSFERS_LOG_FORMAT=json`` (read per line)."""
    renderer = _JSON if os.environ.get("TRANSFERS_LOG_FORMAT") == "json" else _CONSOLE
    return str(renderer(logger, method, dict(event)))


def _copy_to_run_log(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Append the line to the run's own log file, whoever else gets it."""
    path = _run_log.get()
    if path is not None:
        line = _render(logger, method, event)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        except OSError as exc:
            # A full disk must surface as the run's own error, not as a crash inside a log call;
            # the line itself still goes on to the task log or stderr.
            print(f"run log {path} not written: {exc.strerror or type(exc).__name__}", file=sys.stderr)
    return event


class _Event(dict[str, Any]):
    """A line's fields as the ``logging`` record's message.

    A structlog ``ProcessorFormatter`` (Airflow's JSON one in a task, ours on stderr) renders the fields
    as fields; a plain ``logging`` formatter (pytest's captured log, an application embedding the steps)
    shows ``str()`` of it: ``extracted rows=30 flow='mash-referrals.B'``.
    """

    def __str__(self) -> str:
        fields = " ".join(f"{k}={v!r}" for k, v in self.items() if k not in ("event", "level", "logger", "timestamp"))
        return f"{self.get('event', '')} {fields}".rstrip()


def _for_logging(logger: Any, method: str, event: MutableMapping[str, Any]) -> tuple[Any, ...]:
    """structlog's ``ProcessorFormatter.wrap_for_formatter``, with the fields as an :class:`_Event`."""
    return (_Event(event),), {"extra": {"_logger": logger, "_name": method}}


_PROCESSORS: list[Any] = [
    structlog.stdlib.filter_by_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.processors.format_exc_info,
    _copy_to_run_log,
    _for_logging,
]


class _StderrHandler(logging.Handler):
    """Renders to whatever ``sys.stderr`` is at call time, when no other handler would see the record.

    Binding the stream when the handler is made breaks under test runners and the CLI's test
    runner, which swap ``sys.stderr`` after modules are imported.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if _handled_elsewhere(record, self):
            return
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging's own contract: a handler never raises into the caller
            self.handleError(record)


def _handled_elsewhere(record: logging.LogRecord, ours: logging.Handler) -> bool:
    """Whether a handler other than ours (Airflow's, pytest's, an embedding application's) gets ``record``."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(h is not ours and not isinstance(h, logging.NullHandler) for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def _stderr_formatter() -> logging.Formatter:
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, _render],
        # Plain ``logging`` records under ``transfers`` (none today) get the same fields as ours.
        foreign_pre_chain=[
            structlog.stdlib.add_logger_name,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
    )


def _setup() -> logging.Logger:
    root = logging.getLogger(ROOT)
    if root.level == logging.NOTSET:  # a host that set our level itself keeps it
        level = logging.getLevelName(os.environ.get("TRANSFERS_LOG_LEVEL", "INFO").upper())
        root.setLevel(level if isinstance(level, int) else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_stderr_formatter())
        root.addHandler(handler)
    return root


_setup()


def log_to_stderr() -> None:
    """For the CLI: our lines go to stderr only, not also to a handler Airflow's import puts on the root logger.

    (A lookup through Airflow's connections imports it, and Airflow configures logging when it is imported:
    its root handler writes to stdout, where a command's ``--json`` output goes.)
    """
    _setup().propagate = False


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger for ``name`` (a module's ``__name__``, so under ``transfers``)."""
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name), processors=_PROCESSORS, wrapper_class=structlog.stdlib.BoundLogger
    )
    return logger


class Progress:
    """Progress of long work (parts, batches): at most one info line every ``every`` seconds, none before.

    The stage's own summary line says what was done; these say how far it has got on a night that
    takes hours, without a line per part (those are the caller's, at debug).
    """

    def __init__(self, log: structlog.stdlib.BoundLogger, event: str, *, every: float = 60.0, **context: Any) -> None:
        self.log, self.event, self.every, self.context = log, event, every, context
        self.steps = 0
        self.totals: dict[str, int] = {}
        self._last = time.monotonic()

    def step(self, **counts: int) -> None:
        """One more step done, adding ``counts`` (rows, bytes, ...) to the running totals."""
        self.steps += 1
        for name, value in counts.items():
            self.totals[name] = self.totals.get(name, 0) + value
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.log.info(self.event, **self.context, done=self.steps, **self.totals)
