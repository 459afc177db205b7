"""The S3 work store as a retention place for what tasks published there: reports, notices and run logs.

Each DAG task publishes its flow's reports (``reports/<agreement>/<flow>/...``), notices
(``notices/<agreement>/<flow>/<partner>/...``) and its part of the run's log
(``logs/<agreement>/<flow>/<date>/<task>.log``) to the store (``transfers.workstore.outputs``). The purge lists
them in that shape and gives each its flow's period, as for a local copy: ``retention.reports`` (a report's
date is the end of its name's stem), ``retention.notices`` (no date: a notice covers a subject, not a run),
``retention.logs``, counted from the object's time. Deleting one is ``workstore.delete`` (size and SHA-256
read first, every version deleted and checked).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from transfers.layout import LOGS, NOTICES, REPORTS, layout_day
from transfers.retention.items import PurgeItem
from transfers.workstore.outputs import flow_folder

if TYPE_CHECKING:
    from transfers.agreement import FlowRef
    from transfers.durations import Duration
    from transfers.settings import Settings
    from transfers.workstore.objects import WorkObjects

#: The published places and their period key under ``flows[].retention``.
PUBLISHED = ((REPORTS, "reports"), (NOTICES, "notices"), (LOGS, "logs"))


def held(store: WorkObjects, settings: Settings, ref: FlowRef, periods: dict[str, Duration]) -> Iterator[PurgeItem]:
    """Every report, notice and log part of one flow published in the store, due or not."""
    for place, key in PUBLISHED:
        period = periods[key]
        rule = f"retention.{key} {period}"
        base = flow_folder(settings, place, ref.agreement.id, ref.flow.id)
        for obj in store.listing(base):
            parts = obj.relative[len(base) + 1:].split("/")
            if any(part in ("", ".", "..") for part in parts):
                continue  # not a name a task published
            if place == LOGS:
                day = layout_day(parts[0]) if len(parts) == 2 else None
                if day is None:
                    continue  # not <date>/<task>.log: not a run's log part
            elif place == REPORTS:
                day = layout_day(parts[-1].split(".", 1)[0].rpartition("_")[2])
            else:
                day = None
            yield PurgeItem(place, ref.key, store.place.url(obj.relative), obj.modified, period.after(obj.modified),
                            rule, recipient=parts[0] if place == NOTICES and len(parts) > 1 else None,
                            size=obj.size, day=day, store="s3")
