"""One task's view of a run in the S3 work store: checked out at its start, committed at its success.

A task sees the run's working places (``runs/<a>/<f>/<date>/``, ``outbox/<a>/<f>/<date>/`` and the
run's "running" marker) as local files, as on one machine, in a folder of its own under the home
(``tasks/<random>/``, the layout's work root for that task). At the start every object under them
is downloaded into a new, empty folder (a killed task's stale one is swept), and what was there
is remembered (path and SHA-256), except the staging parts, the big files: those are fetched when a
reader opens one (``lazy.StoredParts``, given to the staging through the FlowRun), and a mapped part
task (``outbox_parts=False``) leaves out the outbox's delivery files (``*.pgp``), as it writes its
own. At success the task uploads what it made or changed and deletes in the store what it deleted, of
what it saw, and a stage's stored parts it rewrote: tasks running at once (encrypt for two recipients,
mapped parts) each touch only their own files. A delivery's manifest is uploaded last, so a
manifest in the store means a complete, signed outbox there too. Whatever happens, the local
copies go at the end: a worker keeps nothing between tasks. A failed task uploads nothing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.files import private_dir, sha256_size
from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX
from transfers.workstore.lazy import StoredParts, staging_part
from transfers.workstore.objects import WorkObjects, open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun

log = get_logger(__name__)


@dataclass(frozen=True)
class RunPlaces:
    """A run's working places, as paths relative to its work root (the same as the keys under the prefix)."""

    root: Path  # the work root the layout put them under; the relative paths are the layout's, never built here
    folders: tuple[str, ...]  # runs/<a>/<f>/<date>, outbox/<a>/<f>/<date>
    marker: str  # running/<a>/<f>/<date>.json

    @classmethod
    def of(cls, run: FlowRun) -> RunPlaces:
        layout, ref = run.settings.layout, run.ref
        root = layout.work_root
        outbox = layout.outbox_dir(ref.agreement.id, ref.flow.id, run.logical_date, "-").parent
        marker = layout.running_marker(ref.agreement.id, ref.flow.id, run.logical_date)
        return cls(root, (run.run_dir.relative_to(root).as_posix(), outbox.relative_to(root).as_posix()),
                   marker.relative_to(root).as_posix())

    def local_files(self) -> dict[str, Path]:
        """Every file in the places now (a temporary file being written is not one)."""
        found: dict[str, Path] = {}
        for folder in self.folders:
            base = self.root / folder
            if base.is_dir():
                for path in base.rglob("*"):
                    if path.is_file() and not path.is_symlink() and not _temporary(path.name):
                        found[path.relative_to(self.root).as_posix()] = path
        marker = self.root / self.marker
        if marker.is_file():
            found[self.marker] = marker
        return found


def _temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def checkout(store: WorkObjects, places: RunPlaces, outbox_parts: bool = True) -> StoredParts:
    """Download the run's objects into the task's work root, but its staging parts (fetched on demand) and,
    unless ``outbox_parts``, the outbox's delivery files; what was there and what waits in the store."""
    staging, outbox = places.folders
    wanted: list[str] = []
    waiting: dict[str, int] = {}
    left_out = 0
    for folder in places.folders:
        for obj in store.listing(folder):
            if folder == staging and staging_part(obj.relative, staging):
                waiting[obj.relative] = obj.size
            elif folder == outbox and not outbox_parts and obj.relative.endswith(".pgp"):
                left_out += 1  # another part task's, or an earlier attempt's: never read, never committed
            else:
                wanted.append(obj.relative)
    if store.exists(places.marker):
        wanted.append(places.marker)
    seen, total = {}, 0
    for relative in wanted:
        local = places.root / relative
        private_dir(local.parent)
        if not store.download(relative, local):
            continue
        size, digest = sha256_size(local)
        seen[relative], total = digest, total + size
    log.info("work files checked out", store=store.place.url(), files=len(seen), bytes=total,
             parts_on_demand=len(waiting), parts_on_demand_bytes=sum(waiting.values()), outbox_left_out=left_out)
    return StoredParts(store, places.root, waiting, seen)


def commit(store: WorkObjects, places: RunPlaces, seen: dict[str, str],
           replaced: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """Upload what the task made or changed, each stage's ``columns.json`` after its parts and manifests last;
    delete what it deleted of what it saw, and the ``replaced`` stored parts it did not write again."""
    now = places.local_files()
    changed: dict[str, Path] = {}
    total = 0
    for relative, path in now.items():
        size, digest = sha256_size(path)
        if seen.get(relative) != digest:
            changed[relative] = path
            total += size
    gone = [relative for relative in seen if relative not in now]
    gone += sorted(relative for relative in replaced if relative not in now and relative not in seen)
    # A stage's column list names its parts: uploaded after them, a cut-short commit never names a part not there.
    changed = dict(sorted(changed.items(), key=lambda item: item[0].endswith("/columns.json")))
    manifests = [r for r in changed if r.endswith(MANIFEST_SUFFIX)]
    # A manifest stands for a complete outbox: the old one goes before its parts change, the new one comes last.
    for relative in [r for r in gone if r.endswith(MANIFEST_SUFFIX)] + [r for r in manifests if r in seen]:
        store.delete(relative)
    for relative, path in changed.items():
        if relative not in manifests:
            store.upload(path, relative)
    for relative in manifests:
        store.upload(changed[relative], relative)
    for relative in gone:
        if not relative.endswith(MANIFEST_SUFFIX):
            store.delete(relative)
    counts = {"uploaded": len(changed), "deleted": len(gone), "bytes": total}
    log.info("work files committed", store=store.place.url(), **counts)
    return counts


@contextmanager
def task_files(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None,
               outbox_parts: bool = True) -> Iterator[FlowRun]:
    """The run as this task sees it: ``run`` itself unless ``TRANSFERS_WORK_STORE`` is ``s3://...``.

    With S3, the run's files are checked out into a folder of this task's own (``<home>/tasks/<random>/``:
    tasks of one run may run at once on one worker, and must not clear each other's files), the run
    yielded works there, its changes are committed on success, and the folder goes whatever happens.
    ``connection`` resolves ``TRANSFERS_WORK_STORE_CONN_ID`` (the DAG: Airflow's; default: the CLI's lookup).
    The staging parts are fetched as the run's staging opens them; ``outbox_parts=False`` (a mapped part
    task) leaves the outbox's delivery files in the store: the task reads none and writes its own.
    """
    where = parse_work_store(run.settings.work_store)
    if not isinstance(where, S3Place):
        yield run
        return
    store = open_objects(run.settings, where, connection)
    tasks = run.settings.layout.tasks
    _sweep(tasks, run.settings.task_timeout_minutes)
    private_dir(tasks)
    root = Path(tempfile.mkdtemp(dir=tasks))  # owner-only
    try:
        mine = replace(run, settings=run.settings.for_task(root))
        places = RunPlaces.of(mine)
        parts = checkout(store, places, outbox_parts)
        try:
            yield replace(mine, stored_parts=parts)
            commit(store, places, parts.seen, parts.replaced)
        finally:
            log.info("staging parts fetched on demand", store=store.place.url(), parts=parts.fetched,
                     bytes=parts.fetched_bytes, left_in_store=len(parts.waiting))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _sweep(tasks: Path, timeout_minutes: float) -> None:
    """Remove checkouts older than any task may run (Airflow stops it at its timeout): a killed worker's."""
    if not tasks.is_dir():
        return
    cutoff = time.time() - timeout_minutes * 60 - 600
    for old in tasks.iterdir():
        try:
            if old.is_dir() and not old.is_symlink() and old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue  # another task swept it first
