"""Quarantine: a rejected delivery's files, kept as received (still encrypted), with the reason beside them.

Nothing here decrypts. The files are moved (renamed when the quarantine is on the same
filesystem as the inbox; otherwise copied under a temporary name, synced, renamed, and only
then removed from the inbox), so a rejected delivery leaves the inbox and can never be picked
up and loaded by a later run. ``reason.json`` is written last and atomically:

    {"delivery_id", "reason", "quarantined_at", "manifest_sha256", "destroy_by",
     "files": [{"name", "size", "sha256"}]}

``destroy_by`` is the controller's date from the delivery's manifest when it was signed and
readable (``null`` otherwise): the recipient's purge destroys the folder on that date, or after the
flow's ``retention.staging`` from ``quarantined_at`` when there is none (``transfers.retention.received``).

A second quarantine into the same place (the same delivery rejected again, e.g. resent) goes
into ``<dest>.2``, ``<dest>.3``, …: earlier evidence is never overwritten.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

from transfers.files import private_dir, sha256_size, write_atomic
from transfers.logs import get_logger

__all__ = ["REASON_FILE", "quarantine"]

log = get_logger(__name__)

REASON_FILE = "reason.json"


def quarantine(files: list[Path], dest: Path, *, reason: str, delivery_id: str,
               manifest_sha256: str | None, destroy_by: date | None = None) -> Path:
    """Move ``files`` into a new owner-only folder at ``dest`` (or ``dest.N`` when taken) and write ``reason.json``.

    Paths in ``files`` that do not exist are skipped (the manifest or a signature may never
    have arrived). ``reason`` must name files, fields or keys only, never record values.
    ``destroy_by`` is the signed manifest's date, when the manifest could be read and verified.
    Returns the folder the files are now in.

    Raises:
        ValueError: Two files share a name, or one is named ``reason.json``.
    """
    names = [path.name for path in files]
    if len(set(names)) != len(names) or REASON_FILE in names:
        raise ValueError(f"quarantine of {delivery_id}: file names must be unique and not {REASON_FILE}")
    present = [path for path in files if path.exists()]
    folder = _claim(dest)
    kept = []
    for path in present:
        target = folder / path.name
        _move(path, target)
        size, digest = sha256_size(target)
        kept.append({"name": path.name, "size": size, "sha256": digest})
    document = {
        "delivery_id": delivery_id,
        "reason": reason,
        "quarantined_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "manifest_sha256": manifest_sha256,
        "destroy_by": destroy_by.isoformat() if destroy_by else None,
        "files": kept,
    }
    write_atomic(folder / REASON_FILE, json.dumps(document, indent=2, sort_keys=True) + "\n", sync_dir=True)
    log.warning("delivery quarantined", delivery_id=delivery_id, folder=str(folder), files=len(kept),
                missing=[path.name for path in files if path not in present])
    return folder


def _claim(dest: Path) -> Path:
    """Create and return the first of ``dest``, ``dest.2``, ``dest.3``, … that did not exist (0700)."""
    private_dir(dest.parent)
    number = 1
    while True:
        candidate = dest if number == 1 else dest.with_name(f"{dest.name}.{number}")
        try:
            # mkdir either creates or fails: two quarantines at once never share a folder.
            candidate.mkdir(mode=0o700)
        except FileExistsError:
            number += 1
            continue
        return private_dir(candidate)  # mkdir's mode is masked by the umask


def _move(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)  # target is in a folder we just created: nothing to overwrite
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Another filesystem: the copy must be whole on disk before the inbox copy goes.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    source.unlink()
