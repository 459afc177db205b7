"""Local places: the files ``HomeLayout`` enumerates, dated by their modification time.

Which files a place holds and which run each belongs to is the layout's to say
(``HomeLayout.held``): this module never guesses a date from a path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from transfers.durations import Duration
from transfers.files import sha256_file
from transfers.retention.items import PurgeItem
from transfers.settings import Held


def scan(place: str, flow: str, held: Iterable[Held], period: Duration, rule: str) -> Iterator[PurgeItem]:
    """Every file held (due or not), with its due date and its run's date."""
    for copy in held:
        created = datetime.fromtimestamp(copy.path.stat().st_mtime, UTC)
        yield PurgeItem(place, flow, str(copy.path), created, period.after(created), rule, day=copy.day)


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
