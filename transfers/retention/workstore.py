"""The S3 work store as a retention place: outbox copies and runs' staging left there, and running runs.

With ``TRANSFERS_WORK_STORE=s3://...`` the sealed outbox of each run stays in the store after its
cleanup (as it stays under the home on one machine), and a killed run's staging may too. The purge
finds them by listing the store in the layout's own shape (``outbox/<agreement>/<flow>/<date>/<partner>/``,
``runs/<agreement>/<flow>/<date>/``), deletes each due object with every version, and records it
with its size and SHA-256 (read just before the deletion), as for a local copy. A run's "running"
marker is in the store too (``running/<agreement>/<flow>/<date>.json``, committed by its tasks), so
every worker's purge holds back the copies of a run still going on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import TYPE_CHECKING

from transfers.layout import OUTBOX, RUNNING, RUNS, layout_day
from transfers.retention.items import PurgeItem
from transfers.workstore.objects import WorkObjects, open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.agreement import FlowRef
    from transfers.connections import ConnInfo
    from transfers.durations import Duration
    from transfers.settings import Settings


def store_of(settings: Settings, connection: Callable[[str], ConnInfo] | None) -> WorkObjects | None:
    """The S3 work store's objects, or None when the work store is local or a shared volume."""
    where = parse_work_store(settings.work_store)
    return open_objects(settings, where, connection) if isinstance(where, S3Place) else None


def _flow_folder(settings: Settings, folder: str, ref: FlowRef) -> str:
    """``<folder>/<agreement>/<flow>`` as the layout puts it under the home (the same under the prefix)."""
    layout = settings.layout
    return (layout.folder(folder) / ref.agreement.id / ref.flow.id).relative_to(layout.work_root).as_posix()


def held(store: WorkObjects, settings: Settings, ref: FlowRef, period: Duration) -> Iterator[PurgeItem]:
    """Every outbox and staging object of one flow in the store, due or not (``retention.staging``)."""
    rule = f"retention.staging {period}"
    for place, depth in ((OUTBOX, 2), (RUNS, 1)):  # below <date>: <partner>/<file>, or the staging files
        base = _flow_folder(settings, place, ref)
        for obj in store.listing(base):
            parts = obj.relative[len(base) + 1:].split("/")
            day = layout_day(parts[0])
            if day is None or len(parts) < 1 + depth:
                continue  # not the layout's shape: not a run's copy, never purged as one
            yield PurgeItem(place, ref.key, store.place.url(obj.relative), obj.modified, period.after(obj.modified),
                            rule, recipient=parts[1] if place == OUTBOX else None, size=obj.size, day=day,
                            store="s3")


def running_days(store: WorkObjects, settings: Settings, ref: FlowRef) -> set[date]:
    """The dates of this flow's runs whose marker is in the store (between their check and their cleanup)."""
    base = _flow_folder(settings, RUNNING, ref)
    days = {layout_day(obj.relative[len(base) + 1:]) for obj in store.listing(base)}
    return {day for day in days if day is not None}


def delete(store: WorkObjects, item: PurgeItem) -> tuple[int, str, int, str]:
    """Read one object's size and SHA-256, then delete every version of it and prove none is left:
    ``(size, sha256, versions deleted, how it was checked)``."""
    from transfers.retention.s3 import delete_all_versions, split

    bucket, key = split(item.path)
    relative = key[len(store.place.key("")):]
    digest, size = hashlib.sha256(), 0
    try:
        body = store.client.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    except Exception as exc:  # boto3 raises many kinds; all become ours
        raise store.failure("reading before deletion", relative, exc) from None
    count, check = delete_all_versions(store.client, item.path)
    return size, digest.hexdigest(), count, check
