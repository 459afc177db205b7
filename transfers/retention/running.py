"""Markers for runs in progress, so a purge never deletes what a run still needs.

A run of (flow, logical date) writes ``<home>/running/<agreement>/<flow>/<date>.json``
when it starts (the ``check`` step) and removes it in ``cleanup``. While the
marker is there, a purge holds back every copy of that (flow, date): its working
files, its outbox (reused on a retry) and its archive. A marker left by a run
that was killed is not expired silently: the purge lists what it holds back, so
someone decides (``cleanup`` for that date removes it).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path

from transfers.files import write_atomic


def marker_path(home: Path, agreement: str, flow: str, ds: str) -> Path:
    return home / "running" / agreement / flow / f"{ds}.json"


def mark_running(home: Path, agreement: str, flow: str, ds: str) -> Path:
    """Record that (flow, ds) is running; idempotent (a retry keeps the first start time)."""
    path = marker_path(home, agreement, flow, ds)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"started": datetime.now(UTC).isoformat(timespec="seconds"),
                                   "host": socket.gethostname(), "pid": os.getpid()}))
    return path


def clear_running(home: Path, agreement: str, flow: str, ds: str) -> None:
    marker_path(home, agreement, flow, ds).unlink(missing_ok=True)


def running_dates(home: Path, agreement: str, flow: str) -> set[str]:
    """Logical dates of this flow with a run in progress."""
    folder = home / "running" / agreement / flow
    if not folder.is_dir():
        return set()
    return {p.stem for p in folder.glob("*.json")}
