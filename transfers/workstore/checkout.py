"""One task's view of a run in the S3 work store: checked out at its start, committed at its success.

A task sees the run's working places (``runs/<a>/<f>/<date>/``, ``outbox/<a>/<f>/<date>/`` and the
run's "running" marker) as local files under its home, as on one machine. At the start every
object under them is downloaded, after any stale local copy is removed, and what was there is
remembered (path and SHA-256). At success the task uploads what it made or changed and deletes in
the store what it deleted, of what it saw: tasks running at once (encrypt for two recipients,
mapped parts) each touch only their own files. A delivery's manifest is uploaded last, so a
manifest in the store means a complete, signed outbox there too. Whatever happens, the local
copies go at the end: a worker keeps nothing between tasks. A failed task uploads nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.files import private_dir, sha256_size
from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX
from transfers.workstore.objects import WorkObjects, open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun

log = get_logger(__name__)


@dataclass(frozen=True)
class RunPlaces:
    """A run's working places, as paths relative to the home (the same as the keys under the prefix)."""

    root: Path  # the home the layout put them under; the relative paths are the layout's, never built here
    folders: tuple[str, ...]  # runs/<a>/<f>/<date>, outbox/<a>/<f>/<date>
    marker: str  # running/<a>/<f>/<date>.json

    @classmethod
    def of(cls, run: FlowRun) -> RunPlaces:
        layout, ref = run.settings.layout, run.ref
        home = layout.home
        outbox = layout.outbox_dir(ref.agreement.id, ref.flow.id, run.logical_date, "-").parent
        marker = layout.running_marker(ref.agreement.id, ref.flow.id, run.logical_date)
        return cls(home, (run.run_dir.relative_to(home).as_posix(), outbox.relative_to(home).as_posix()),
                   marker.relative_to(home).as_posix())

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

    def remove_local(self) -> None:
        for folder in self.folders:
            shutil.rmtree(self.root / folder, ignore_errors=True)
            _prune(self.root / folder, self.root)
        (self.root / self.marker).unlink(missing_ok=True)
        _prune(self.root / self.marker, self.root)


def _temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def _prune(path: Path, root: Path) -> None:
    """Remove the empty folders above ``path`` up to (not including) the layout's top folder."""
    for parent in path.relative_to(root).parents:
        if len(parent.parts) < 2:
            return
        try:
            (root / parent).rmdir()
        except OSError:
            return


def checkout(store: WorkObjects, places: RunPlaces) -> dict[str, str]:
    """Download the run's objects into the home; ``{relative path: sha256}`` of what was there."""
    places.remove_local()
    wanted = [obj.relative for folder in places.folders for obj in store.listing(folder)]
    if store.exists(places.marker):
        wanted.append(places.marker)
    seen, total = {}, 0
    for relative in wanted:
        local = places.root / relative
        private_dir(local.parent)
        store.download(relative, local)
        size, digest = sha256_size(local)
        seen[relative], total = digest, total + size
    log.info("work files checked out", store=store.place.url(), files=len(seen), bytes=total)
    return seen


def commit(store: WorkObjects, places: RunPlaces, seen: dict[str, str]) -> dict[str, int]:
    """Upload what the task made or changed, manifests last; delete what it deleted of what it saw."""
    now = places.local_files()
    changed: dict[str, Path] = {}
    total = 0
    for relative, path in now.items():
        size, digest = sha256_size(path)
        if seen.get(relative) != digest:
            changed[relative] = path
            total += size
    gone = [relative for relative in seen if relative not in now]
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
def task_files(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None) -> Iterator[None]:
    """The run's working files for one task: a no-op unless ``TRANSFERS_WORK_STORE`` is ``s3://...``.

    ``connection`` resolves ``TRANSFERS_WORK_STORE_CONN_ID`` (the DAG: Airflow's connections; default:
    the CLI's lookup). On success the task's changes are committed; either way the local copies go.
    """
    where = parse_work_store(run.settings.work_store)
    if not isinstance(where, S3Place):
        yield
        return
    store = open_objects(run.settings, where, connection)
    places = RunPlaces.of(run)
    try:
        seen = checkout(store, places)
        yield
        commit(store, places, seen)
    finally:
        places.remove_local()
