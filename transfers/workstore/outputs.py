"""What a task writes outside its run's working places, published to the S3 work store so every worker,
the UI and the purge see it: the data owner's reports, notices sent to partners, and the run's log.

A task (``task_files``) writes its flow's reports (``reports/<a>/<f>/``) and its agreement's notices
(``notices/<a>/<f>/<partner>/``) under the worker's home as on one machine. At its end, whatever its outcome (a
blocked quality run's report matters most), each of them (reports named for its run's date; any notice) that is
new or changed since the task started is uploaded under the same relative key (``<prefix>/reports/<a>/<f>/...``).
The published copies are then removed from the worker, which keeps none between tasks (so no worker holds a copy
the purge, running elsewhere, cannot reach); only a failed task's notices stay until a task here succeeds, as
its retry re-sends the same bytes.

The run's log is appended to by many tasks, on many workers, some at once: each task writes its part to a file
of its own (in a folder of its own under ``<home>/tasks/``) and publishes it as its own object,
``logs/<a>/<f>/<date>/<task>.log`` (``<task>`` is random), never merged; reading a run's log is reading its
parts in the order of their times.

Readers see them through ``transfers.workstore.mirror``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import TransferError
from transfers.files import private_dir
from transfers.layout import LOGS, NOTICES, REPORTS, HomeLayout, layout_day
from transfers.logs import get_logger, run_log
from transfers.workstore.objects import WorkObjects, open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun
    from transfers.settings import Settings

log = get_logger(__name__)


def flow_folder(settings: Settings, place: str, agreement: str, flow: str) -> str:
    """``<place>/<agreement>/<flow>`` relative to the home, as the layout puts it (the same under the prefix)."""
    layout = settings.layout
    return (layout.folder(place) / agreement / flow).relative_to(layout.home).as_posix()


def log_part(settings: Settings, agreement: str, flow: str, day: str, task: str) -> str:
    """The object (relative to the prefix) holding one task's part of a run's log."""
    return f"{flow_folder(settings, LOGS, agreement, flow)}/{day}/{task}.log"


@dataclass
class _Snapshot:
    """The run's report files and the agreement's notices on this worker when the task started:
    ``{relative: (size, mtime_ns)}``. Reports of other dates are another run's (perhaps being written now by
    a task beside this one): never this task's to publish or remove. Notices are the agreement's: a flow's
    ``notify`` sends one to each earlier recipient of a withdrawn subject, by any flow of the agreement."""

    home: Path
    reports: str  # reports/<a>/<f>
    notices: str  # notices/<a>
    day: date
    files: dict[str, tuple[int, int]] = field(default_factory=dict)

    def now(self) -> dict[str, tuple[Path, tuple[int, int]]]:
        found = {}
        for folder in (self.reports, self.notices):
            base = HomeLayout(self.home).at(folder)
            if not base.is_dir() or base.is_symlink():
                continue
            for path in base.rglob("*"):
                if not path.is_file() or path.is_symlink() or path.name.startswith("."):
                    continue
                if folder == self.reports and report_day(path.name) != self.day:
                    continue
                stat = path.stat()
                found[path.relative_to(self.home).as_posix()] = (path, (stat.st_size, stat.st_mtime_ns))
        return found

    def changed(self) -> dict[str, Path]:
        return {rel: path for rel, (path, mark) in self.now().items() if self.files.get(rel) != mark}


def report_day(name: str) -> date | None:
    """A report's run date: the end of the stem the layout gave it (``quality_<flow>_<date>.html``)."""
    return layout_day(name.split(".", 1)[0].rpartition("_")[2])


def _publish(store: WorkObjects, snapshot: _Snapshot, log_file: Path, log_key: str, failed: bool) -> None:
    """Upload the task's new or changed reports and notices, and its part of the run log (this line its last);
    then the published copies go from the worker. Raises the store's error if an upload fails (nothing removed).

    A failed task's notices stay on the worker: its retry here re-sends the same bytes, so a notice that reached
    the partner before the failure reconciles rather than conflicts. After a success every notice is in the
    ledger (never made again), so it goes, with any a failed task left here that the store holds alike.
    """
    changed = snapshot.changed()
    log.info("task outputs published", store=store.place.url(), outcome="failed" if failed else "succeeded",
             files=len(changed), bytes=sum(path.stat().st_size for path in changed.values()))
    for relative, path in changed.items():
        store.upload(path, relative)
    if log_file.is_file() and log_file.stat().st_size:
        store.upload(log_file, log_key)
    for relative, path in changed.items():
        if relative.startswith(snapshot.reports + "/") or not failed:
            path.unlink(missing_ok=True)  # the store's copy is the one every reader and the purge see
    left = {rel: path for rel, (path, _mark) in snapshot.now().items() if rel.startswith(snapshot.notices + "/")}
    if left and not failed:
        held = {obj.relative: obj.size for obj in store.listing(snapshot.notices)}
        for relative, path in left.items():
            if held.get(relative) == path.stat().st_size:
                path.unlink(missing_ok=True)


@contextmanager
def published_outputs(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None) -> Iterator[None]:
    """Inside, the run's log lines go to this task's own part; at the end, whatever the outcome, the task's
    reports, notices and log part are published to the S3 work store. Nothing happens unless S3.

    A failed task's outputs are published too; if publishing them fails as well, the task's own error is
    the one raised (the publishing error is logged) and the reports stay on the worker.
    """
    where = parse_work_store(run.settings.work_store)
    if not isinstance(where, S3Place):
        yield
        return
    settings, ref = run.settings, run.ref
    store = open_objects(settings, where, connection)
    snapshot = _Snapshot(settings.home, flow_folder(settings, REPORTS, ref.agreement.id, ref.flow.id),
                         (settings.layout.folder(NOTICES) / ref.agreement.id).relative_to(settings.home).as_posix(),
                         run.logical_date)
    snapshot.files = {rel: mark for rel, (_path, mark) in snapshot.now().items()}
    tasks = settings.layout.tasks
    private_dir(tasks)
    own = Path(tempfile.mkdtemp(dir=tasks))  # swept like a checkout if the task is killed
    log_file = own / "run.log"
    key = log_part(settings, ref.agreement.id, ref.flow.id, run.logical_date.isoformat(), own.name)
    try:
        with run_log(log_file):  # publishing inside it: no line of this task's goes to the worker's own log
            try:
                yield
            except BaseException:
                try:
                    _publish(store, snapshot, log_file, key, failed=True)
                except TransferError as exc:
                    log.warning("task outputs not published", store=where.url(), error=str(exc))
                raise
            _publish(store, snapshot, log_file, key, failed=False)
    finally:
        shutil.rmtree(own, ignore_errors=True)
