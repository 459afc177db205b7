"""Readers' view of the reports tasks published to the S3 work store (``transfers.workstore.outputs``).

The UI's flow pages and ``transfers report quality`` call ``mirror_reports`` before listing: the flow's
published reports this home does not hold alike are downloaded into it (bounded, newest first), dated as the
store's copy, so the existing readers (``transfers.reports.files``, which serves only names its listing holds)
work unchanged. A mirrored copy whose published original the purge has deleted (a ``Purged`` record names the
object) is deleted here too, checked and recorded the same way: a reader's home (the API server's) may never
run a purge of its own, and must not keep what the controller's period says must go.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.files import private_dir, sha256_size
from transfers.layout import REPORTS
from transfers.logs import get_logger
from transfers.workstore.objects import open_objects
from transfers.workstore.outputs import flow_folder, report_day
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.settings import Settings

log = get_logger(__name__)

#: The most report files one listing mirrors (newest first): a reader never downloads without bound.
MIRROR_LIMIT = 500


def mirror_reports(settings: Settings, agreement: str, flow: str,
                   connection: Callable[[str], ConnInfo] | None = None) -> int:
    """Download the flow's published reports this home does not hold alike (size and time), newest first, at
    most ``MIRROR_LIMIT``, and drop mirrored copies of purged ones; how many were downloaded. Nothing unless
    the work store is S3.

    Only names in the layout's shape (``<file>`` or ``dry-run/<file>`` under the flow's reports folder, no
    dot-files) are written, so no object name can reach outside the folder.
    """
    where = parse_work_store(settings.work_store)
    if not isinstance(where, S3Place):
        return 0
    store = open_objects(settings, where, connection)
    base = flow_folder(settings, REPORTS, agreement, flow)
    listed = sorted(store.listing(base), key=lambda o: o.modified, reverse=True)
    count = 0
    for obj in listed[:MIRROR_LIMIT]:
        parts = obj.relative[len(base) + 1:].split("/")
        if not _report_shape(parts):
            continue
        local = settings.layout.at(base).joinpath(*parts)
        stamp = obj.modified.timestamp()
        if local.is_symlink():
            continue  # never written through
        if local.is_file():
            held = local.stat()
            if held.st_size == obj.size and int(held.st_mtime) == int(stamp):
                continue
        private_dir(local.parent)
        if store.download(obj.relative, local):
            os.utime(local, (stamp, stamp))  # dated as the store's copy: this home's purge keeps the same period
            count += 1
    if count:
        log.info("published reports mirrored", store=where.url(base), files=count)
    in_store = {obj.relative for obj in listed}
    gone = [path for path in _local_reports(settings.layout.at(base))
            if path.relative_to(settings.home).as_posix() not in in_store]
    if gone:
        _drop_purged(settings, where, f"{agreement}.{flow}", gone)
    return count


def _report_shape(parts: list[str]) -> bool:
    if len(parts) not in (1, 2) or len(parts) == 2 and parts[0] != "dry-run":
        return False
    name = parts[-1]
    if not name or name.startswith(".") or any(c in name for c in "\0\n\r\\"):
        return False
    return report_day(name) is not None


def _local_reports(folder: Path) -> list[Path]:
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()]


def _drop_purged(settings: Settings, where: S3Place, flow_key: str, candidates: list[Path]) -> None:
    """Delete each local copy whose published original the ledger says was purged, with a ``Purged`` record of
    its own (the original's rule; the copy's size and SHA-256). A local report never published is left alone."""
    from transfers.ledger.records import Purged

    with settings.open_ledger() as ledger:
        purged = {p.path: p for p in ledger.records(Purged, flow=flow_key) if p.store == "s3"}
        for path in candidates:
            original = purged.get(where.url(path.relative_to(settings.home).as_posix()))
            if original is None:
                continue
            try:
                size, digest = sha256_size(path)
                created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
                path.unlink()
                if path.exists() or path.is_symlink():
                    raise OSError(f"{path} is still there after deletion")
            except OSError as exc:  # the listing still works; the next one tries again
                log.warning("mirrored report of a purged copy not deleted", path=str(path), error=str(exc))
                continue
            now = datetime.now(UTC)
            ledger.record(replace(original, entry=None, store="local", path=str(path), created=created,
                                  key=Purged.local_key(original.place, str(path), digest, created), size=size,
                                  sha256=digest, deleted_at=now, at=now, versions_deleted=None,
                                  verified="absent after deletion (stat: no such file)",
                                  note=f"mirror of {original.path}, purged there"))
            log.info("mirrored report dropped: its published copy was purged", path=str(path))
