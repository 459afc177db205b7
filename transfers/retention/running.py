"""Markers for runs in progress, so a purge never deletes what a run still needs.

A run of (flow, logical date) writes its marker (``HomeLayout.running_marker``:
``<work>/running/<agreement>/<flow>/<date>.json``: under the home, on the shared volume, or in the S3
work store) when it starts (the ``check`` step) and removes it in ``cleanup``. While the
marker is there, a purge holds back every copy of that (flow, date): its working
files, its outbox (reused on a retry) and its archive. A marker left by a run
that was killed is not expired silently: the purge lists what it holds back, so
someone decides (``cleanup`` for that date removes it).
"""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, date, datetime
from pathlib import Path

from transfers.files import write_atomic
from transfers.settings import HomeLayout


def marker_path(home: Path | HomeLayout, agreement: str, flow: str, ds: str) -> Path:
    """The marker's path under a home, or under a layout's work root (a shared volume, a task's checkout)."""
    layout = home if isinstance(home, HomeLayout) else HomeLayout(home)
    return layout.running_marker(agreement, flow, date.fromisoformat(ds))


def mark_running(home: Path | HomeLayout, agreement: str, flow: str, ds: str) -> Path:
    """Record that (flow, ds) is running; idempotent (a retry keeps the first start time)."""
    path = marker_path(home, agreement, flow, ds)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps({"started": datetime.now(UTC).isoformat(timespec="seconds"),
                                   "host": socket.gethostname(), "pid": os.getpid()}))
    return path


def clear_running(home: Path | HomeLayout, agreement: str, flow: str, ds: str) -> None:
    marker_path(home, agreement, flow, ds).unlink(missing_ok=True)

