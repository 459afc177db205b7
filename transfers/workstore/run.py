"""What a whole run (not one task) does with the S3 work store: the CLI's outbox, cleanup's staging."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX
from transfers.workstore.checkout import RunPlaces
from transfers.workstore.objects import open_objects
from transfers.workstore.where import S3Place, parse_work_store

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun

log = get_logger(__name__)


def commit_outbox(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None) -> int:
    """``transfers run`` (one process, files kept local as ever): the run's outbox into the store, manifests
    last, so a later DAG retry, a receipt check or the purge sees it there. How many files; 0 unless S3."""
    where = parse_work_store(run.settings.work_store)
    if not isinstance(where, S3Place):
        return 0
    store = open_objects(run.settings, where, connection)
    places = RunPlaces.of(run)
    outbox = [(r, p) for r, p in places.local_files().items() if r.startswith(places.folders[1] + "/")]
    outbox.sort(key=lambda item: item[0].endswith(MANIFEST_SUFFIX))  # manifests last
    for relative, path in outbox:
        store.upload(path, relative)
    log.info("outbox committed to the work store", store=where.url(places.folders[1]), files=len(outbox),
             bytes=sum(path.stat().st_size for _r, path in outbox))
    return len(outbox)


def drop_staging(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None) -> int:
    """``cleanup``: every staging object of the run goes from the store (the outbox stays); how many."""
    where = parse_work_store(run.settings.work_store)
    if not isinstance(where, S3Place):
        return 0
    return open_objects(run.settings, where, connection).delete_under(RunPlaces.of(run).folders[0])
