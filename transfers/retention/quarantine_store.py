"""The S3 work store as a retention place for quarantined deliveries (``transfers.workstore.quarantine``).

The purge lists ``quarantine/<agreement>/<flow>/<date>/<sender>[.N]/`` in the store, reads each folder's
``reason.json`` for its dates, as for a local folder (``transfers.retention.received``), and destroys a due
one object by object: size and SHA-256 read first, every version deleted, then the folder listed again to
prove nothing is left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from transfers.layout import QUARANTINE, layout_day
from transfers.ledger.records import RemoteFile
from transfers.workstore.objects import StoredObject, WorkObjects

if TYPE_CHECKING:
    from transfers.settings import Settings

__all__ = ["StoredFolder", "delete_folder", "stored_folders"]

REASON_FILE = "reason.json"


@dataclass
class StoredFolder:
    relative: str  # quarantine/<agreement>/<flow>/<date>/<sender>[.N], relative to the prefix
    day: date
    sender: str
    files: list[StoredObject] = field(default_factory=list)
    reason: dict[str, Any] = field(default_factory=dict)


def stored_folders(store: WorkObjects, settings: Settings, agreement: str, flow: str) -> list[StoredFolder]:
    """Each quarantine folder of one flow in the store, with its files and its ``reason.json`` (``{}`` if none)."""
    base = (settings.layout.folder(QUARANTINE) / agreement / flow).relative_to(settings.layout.home).as_posix()
    folders: dict[str, StoredFolder] = {}
    for obj in store.listing(base):
        parts = obj.relative[len(base) + 1:].split("/")
        day = layout_day(parts[0])
        if day is None or len(parts) < 3 or any(part in ("", ".", "..") for part in parts):
            continue  # not the layout's shape: not a quarantined delivery, never destroyed as one
        sender, _, number = parts[1].rpartition(".")
        relative = f"{base}/{parts[0]}/{parts[1]}"
        found = folders.setdefault(relative, StoredFolder(relative, day, sender if sender and number.isdigit()
                                                          else parts[1]))
        found.files.append(obj)
    for found in folders.values():
        if any(obj.relative == f"{found.relative}/{REASON_FILE}" for obj in found.files):
            found.reason = _reason(store, f"{found.relative}/{REASON_FILE}")
    return [folders[key] for key in sorted(folders)]


def _reason(store: WorkObjects, relative: str) -> dict[str, Any]:
    try:
        body = store.client.get_object(Bucket=store.place.bucket, Key=store.place.key(relative))["Body"].read()
        document = json.loads(body)
    except ValueError:
        return {}
    except Exception as exc:  # boto3 raises many kinds; all become ours
        raise store.failure("reading", relative, exc) from None
    return document if isinstance(document, dict) else {}


def delete_folder(store: WorkObjects, relative: str) -> tuple[tuple[RemoteFile, ...], str]:
    """Destroy every object under the folder ``relative`` (each version), then prove none is left.

    Returns each file's (path in the folder, size, SHA-256 read just before its deletion) and how it was checked.
    Raises the store's ``TransferError`` on a failure (what was not deleted stays, and is due again).
    """
    from transfers.errors import DestructionFailed
    from transfers.retention.s3 import delete_all_versions

    files = []
    for obj in list(store.listing(relative)):
        digest, size = hashlib.sha256(), 0
        try:
            body = store.client.get_object(Bucket=store.place.bucket, Key=store.place.key(obj.relative))["Body"]
            while chunk := body.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        except Exception as exc:
            raise store.failure("reading before deletion", obj.relative, exc) from None
        delete_all_versions(store.client, store.place.url(obj.relative))
        files.append(RemoteFile(obj.relative[len(relative) + 1:], size, digest.hexdigest()))
    left = [obj.relative for obj in store.listing(relative)]
    if left:
        raise DestructionFailed(f"{store.place.url(relative)}: {len(left)} object(s) still stored after deletion")
    return tuple(sorted(files, key=lambda f: f.remote_path)), \
        "no object left under the folder (ListObjectsV2), every version of each deleted (ListObjectVersions)"
