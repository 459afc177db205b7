"""Local places: files under a directory, dated by their modification time."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from transfers.durations import Duration
from transfers.files import sha256_file
from transfers.retention.items import PurgeItem

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def logical_date_of(path: Path, root: Path) -> str | None:
    """The run date a copy belongs to: the first ``YYYY-MM-DD`` in its path under ``root``."""
    for part in path.relative_to(root).parts:
        found = _DATE.search(part)
        if found:
            return found.group(0)
    return None


def scan(place: str, flow: str, root: Path, period: Duration, rule: str) -> Iterator[PurgeItem]:
    """Every file under ``root`` (due or not), with its due date."""
    if not root.is_dir():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        yield PurgeItem(place, flow, str(path), created, period.after(created), rule,
                        logical_date=logical_date_of(path, root))


def delete(item: PurgeItem) -> tuple[int, str, str]:
    """Delete one local file and prove it is gone: ``(size, sha256, how it was checked)``.

    Raises:
        OSError: It could not be read or deleted (read-only directory...), or is still there.
    """
    path = Path(item.path)
    size, digest = path.stat().st_size, sha256_file(path)
    path.unlink()
    if path.exists() or path.is_symlink():
        raise OSError(f"{path} is still there after deletion")
    return size, digest, "absent after deletion (stat: no such file)"


def prune_empty_dirs(place: Path, root: Path, home: Path) -> None:
    """Remove empty directories in a flow's ``place`` and its parents up to ``root``.

    ``place`` is ``<root>/<agreement>/<flow>``, the folders the pipeline made for one flow.
    Never ``root`` itself, nothing beside ``place`` (another flow's, or someone else's, folder),
    nothing outside ``home``, and no symlink is followed.
    """
    home, root, place = (Path(os.path.abspath(p)) for p in (home, root, place))
    if root == home or not root.is_relative_to(home) or place == root or not place.is_relative_to(root):
        return  # not a place of ours: nothing here is the purge's to remove
    if place.is_dir() and not place.is_symlink():
        for folder, _dirs, _files in os.walk(place, topdown=False, followlinks=False):
            _rmdir(Path(folder))
    for parent in place.relative_to(root).parents:
        if parent == Path("."):
            break
        _rmdir(root / parent)


def _rmdir(directory: Path) -> None:
    if directory.is_symlink():
        return
    try:
        directory.rmdir()
    except OSError:
        pass  # not empty, or not ours to remove: either way nothing is lost
