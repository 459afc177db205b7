"""Quarantined deliveries in the S3 work store: evidence every worker's purge reaches.

A rejected delivery is quarantined on the worker that received it (``transfers.receive.quarantine``: still
encrypted, ``reason.json`` beside the files). With ``TRANSFERS_WORK_STORE=s3://...`` the folder is then
published under the same relative path (``<prefix>/quarantine/<agreement>/<flow>/<date>/<sender>/``), as task
outputs are (``transfers.workstore.outputs``), and the worker's copy goes: a purge on any worker then finds and
destroys it on its date (``transfers.retention.quarantine_store``). Earlier evidence is never overwritten: when
the store already holds that folder (the same delivery rejected again, perhaps on another worker) it goes to
``<sender>.2``, ``<sender>.3``, ... there, as locally. ``reason.json`` is uploaded last, so a folder without it
is one whose publishing was cut short (its files' own times count, as locally).

Nothing here decrypts; the files are uploaded as they are.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.logs import get_logger
from transfers.workstore.objects import WorkObjects, open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.settings import Settings

__all__ = ["publish_or_keep", "publish_quarantine"]

log = get_logger(__name__)

REASON_FILE = "reason.json"  # transfers.receive.quarantine.REASON_FILE, not imported: that module moves files


def publish_quarantine(settings: Settings, folder: Path,
                       connection: Callable[[str], ConnInfo] | None = None) -> str | None:
    """Upload a quarantine ``folder`` to the S3 work store, check every file is there, then remove the folder.

    Returns the folder's URL in the store; None when the work store is not S3 (nothing done).

    Raises:
        WorkStoreRefused, WorkStoreUnavailable: An upload or the check failed; the local folder is kept whole
            (the worker's own purge still destroys it on its date).
    """
    where = parse_work_store(settings.work_store)
    if not isinstance(where, S3Place):
        return None
    store = open_objects(settings, where, connection)
    relative = _free_name(store, folder.relative_to(settings.layout.home).as_posix())
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    # reason.json last: its presence in the store says every file before it is there.
    files.sort(key=lambda p: p.name == REASON_FILE and p.parent == folder)
    for path in files:
        store.upload(path, f"{relative}/{path.relative_to(folder).as_posix()}")
    held = {obj.relative: obj.size for obj in store.listing(relative)}
    missing = [p.name for p in files if held.get(f"{relative}/{p.relative_to(folder).as_posix()}") != p.stat().st_size]
    if missing:
        from transfers.errors import WorkStoreUnavailable

        raise WorkStoreUnavailable(f"work store {where.url(relative)}: {', '.join(missing)} not stored whole after "
                                   f"uploading; the quarantine copy stays in {folder}")
    shutil.rmtree(folder)
    log.info("quarantine published", store=where.url(relative), files=len(files))
    return where.url(relative)


def publish_or_keep(settings: Settings, folder: Path, connection: Callable[[str], ConnInfo] | None = None) -> None:
    """``publish_quarantine``, where a store that is down leaves the copy on this worker (whose own purge still
    destroys it on its date), logged: the rejection or refusal it is evidence of stands either way."""
    from transfers.errors import TransferError

    try:
        publish_quarantine(settings, folder, connection)
    except TransferError as exc:
        log.warning("quarantine not published; the copy stays on this worker", folder=str(folder), error=str(exc))


def _free_name(store: WorkObjects, relative: str) -> str:
    """``relative``, or the first ``relative.N`` (N = 2, 3, ...) under which the store holds nothing."""
    number = 1
    while True:
        candidate = relative if number == 1 else f"{relative}.{number}"
        if next(iter(store.listing(candidate)), None) is None:
            return candidate
        number += 1
