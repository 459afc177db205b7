"""A task checkout's staging parts left in the S3 work store, fetched when a reader opens one.

Staging parts (``runs/.../<stage>/part-*.arrow.gcm``) are the only big files of a run's staging, and most
tasks read few of them: a mapped part reads the parts holding its rows. So the checkout downloads every
other object and leaves these here (``StoredParts``, the staging's ``PartStore``). A part fetched joins
what the task saw, so the commit treats it as any checked-out file; a stage the task rewrites marks its
stored parts replaced, and the commit deletes those it did not write again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

from transfers.errors import StateError
from transfers.files import private_dir, sha256_size
from transfers.workstore.objects import WorkObjects

#: The staging's part names (``transfers.staging.PARTS``; not imported: it would load pandas with the store).
_PART = "part-*.arrow.gcm"


def staging_part(relative: str, staging: str) -> bool:
    """Whether ``relative`` is a part of a stage of the run whose staging folder is ``staging``."""
    inside = relative.removeprefix(staging + "/")
    return inside != relative and inside.count("/") == 1 and fnmatch(inside.rsplit("/", 1)[1], _PART)


@dataclass
class StoredParts:
    """The staging parts of one checkout that are in the store and not (yet) on this disk."""

    store: WorkObjects
    root: Path  # the task's work root: a local path relative to it is the object's path under the prefix
    waiting: dict[str, int]  # relative path: size, stored and not fetched
    seen: dict[str, str]  # the checkout's own record (relative path: sha256); a fetched part joins it
    replaced: set[str] = field(default_factory=set)  # stored parts of a stage this task rewrote
    fetched: int = 0
    fetched_bytes: int = 0

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def fetch(self, path: Path) -> None:
        relative = self._relative(path)
        where = f"{self.store.place.url(relative)} (bucket {self.store.place.bucket!r}, {self.store.via})"
        stage = path.parent.name
        if relative in self.replaced:
            raise StateError(f"work store {where}: this task rewrote stage {stage!r}, and the part is not one it "
                             f"wrote; run the step that writes stage {stage!r} again")
        private_dir(path.parent)
        if not self.store.download(relative, path):
            raise StateError(f"work store {where}: staging part {path.name} of stage {stage!r} is not there "
                             f"(deleted, or its commit was cut short); run the step that writes stage {stage!r} "
                             f"again for this date")
        size, digest = sha256_size(path)
        self.seen[relative] = digest
        self.waiting.pop(relative, None)
        self.fetched, self.fetched_bytes = self.fetched + 1, self.fetched_bytes + size

    def stored(self, folder: Path) -> list[str]:
        prefix = self._relative(folder) + "/"
        return sorted(r.removeprefix(prefix) for r in self.waiting if r.startswith(prefix)
                      and "/" not in r.removeprefix(prefix))

    def replace(self, folder: Path) -> None:
        prefix = self._relative(folder) + "/"
        for relative in [r for r in self.waiting if r.startswith(prefix)]:
            self.replaced.add(relative)
            del self.waiting[relative]
