"""Plan and carry out a purge: what is held where, what is due, delete it with evidence.

Places and their periods (keys under ``flows[].retention`` in the agreement):

==========  ==================================================  ======================
place       what                                                period
==========  ==================================================  ======================
outbox      the encrypted outbox, reused if a run is retried    ``staging``
runs        working files a killed run could not clear          ``staging``
archive     encrypted deliveries, local directory or S3         ``archive.period``
reports     scorecards, rectification notices (record keys)     ``reports``
notices     withdrawal and correction notices sent to partners ``notices``
logs        run logs under ``<home>/logs``                      ``logs``
remote      the copy on the recipient's SFTP server             ``remote.period`` (if
                                                                ``sender_may_remove``)
received    (recipient) a delivery's rows in our store          the controller's
                                                                ``destroy_by`` (manifest)
quarantine  (recipient) a rejected delivery's files             ``destroy_by``, else
                                                                ``staging``
==========  ==================================================  ======================

With an S3 work store, outbox and runs copies (``transfers.retention.workstore``) and the reports, notices
and log parts tasks published (``transfers.retention.outputs``) are also found, and deleted, in the store.
The recipient's places (``transfers.retention.received``) exist only with ``TRANSFERS_PARTY`` set
and flows received; a legal hold (``transfers.retention.holds``) keeps what it covers, listed as held.

Every deletion is checked (the object is gone afterwards) and recorded in the
ledger (a ``Purged`` record: place, path, size, sha256, created, due, deleted_at,
rule, as_of). ``deleted_at`` is always the real time; ``as_of`` is the moment due
dates were judged at, which ``purge --as-of`` may set later to test. A deletion that fails is recorded too (``PurgeFailed``), reported,
and stays due, so the next purge tries again. A copy belonging to a run still
in progress is held back and listed, never deleted.

Where each local place is, and which (flow, date) a copy in it belongs to, is
``HomeLayout``'s to say: the purge enumerates the object the pipeline writes with.
The agreement key for ``outbox`` and ``runs`` stays ``staging`` (agreements are
signed documents; the key names the period, not a folder).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.agreement import Config, FlowRef, retention_periods
from transfers.connections import ConnInfo
from transfers.errors import TransferError
from transfers.ledger.records import Archived, Purged, PurgeFailed
from transfers.logs import get_logger
from transfers.retention import journal, local, outputs, received, sftp, workstore
from transfers.retention.items import PLACES, RECIPIENT_PLACES, PurgeItem, PurgeReport
from transfers.settings import LOGS, NOTICES, OUTBOX, REPORTS, RUNS

if TYPE_CHECKING:
    from transfers.durations import Duration
    from transfers.ledger import Ledger
    from transfers.settings import Settings

log = get_logger(__name__)

#: Local places under the home (each is the layout's folder of the same name) and their period key.
_LOCAL = ((OUTBOX, "staging"), (RUNS, "staging"), (REPORTS, "reports"), (NOTICES, "notices"), (LOGS, "logs"))


def _s3_held(ref: FlowRef, ledger: Ledger, period: Duration) -> list[PurgeItem]:
    rule = f"retention.archive {period}"
    items = []
    for copy in ledger.records(Archived, flow=ref.key):
        if copy.store != "s3" or ledger.find(Purged.s3_key(copy.path)) is not None:
            continue
        items.append(PurgeItem("archive", ref.key, copy.path, copy.created, period.after(copy.created), rule,
                               copy.recipient, copy.size, copy.sha256,
                               copy.logical_date, "s3"))
    return items


def inventory(settings: Settings, config: Config, ledger: Ledger, *, only_flow: str | None = None,
              connection: Callable[[str], ConnInfo] | None = None) -> list[PurgeItem]:
    """Every copy held now, in every place, due or not (local places and an S3 work store by listing, others
    from the ledger). ``connection`` resolves the work store's (default: the CLI's lookup)."""
    if only_flow:
        config.flow(only_flow)  # an unknown flow is an error naming the known ones, not "nothing due"
    items: list[PurgeItem] = []
    store = workstore.store_of(settings, connection)
    for ref in config.flows():
        if only_flow and ref.key != only_flow:
            continue
        periods = retention_periods(ref.flow)
        layout, base = settings.layout, (ref.agreement.id, ref.flow.id)
        for place, key in _LOCAL:
            items.extend(local.scan(place, ref.key, layout.held(place, *base), periods[key],
                                    f"retention.{key} {periods[key]}"))
        if store is not None:  # the outbox (and a killed run's staging) in the S3 work store
            items.extend(workstore.held(store, settings, ref, periods["staging"]))
            items.extend(outputs.held(store, settings, ref, periods))  # and what tasks published there
        archive = ref.flow.retention.archive
        if archive is not None and archive.bucket:
            items.extend(_s3_held(ref, ledger, periods["archive"]))
        elif archive is not None:
            items.extend(local.scan("archive", ref.key, layout.held("archive", *base, root=layout.archive_root(archive.dir)),
                                    periods["archive"], f"retention.archive {periods['archive']}"))
        items.extend(sftp.held(ref, ledger, periods["remote"]))
    items.extend(received.held(settings, config, ledger, only_flow=only_flow, store=store))
    return sorted(items, key=lambda i: (PLACES.index(i.place), i.flow, i.path))


def plan_purge(settings: Settings, config: Config, ledger: Ledger, *, now: datetime | None = None,
               only_flow: str | None = None, connection: Callable[[str], ConnInfo] | None = None) -> list[PurgeItem]:
    """Everything past its retention period at ``now``, in every place."""
    now = now or datetime.now(UTC)
    return [i for i in inventory(settings, config, ledger, only_flow=only_flow, connection=connection)
            if i.is_due(now)]


class _Recorder:
    """Writes each outcome to the ledger and the report.

    ``as_of`` is the moment due dates were judged against (``purge --as-of`` may pretend a later
    one to test retention); every deletion and attempt is recorded at the real time it happened,
    so the evidence never claims a deletion on a day it did not take place.
    """

    def __init__(self, config: Config, ledger: Ledger, report: PurgeReport, as_of: datetime, home: Path) -> None:
        self.config, self.ledger, self.report, self.as_of, self.home = config, ledger, report, as_of, home

    def _common(self, item: PurgeItem) -> dict:
        return {"agreement": self.config.flow(item.flow).agreement.id, "flow": item.flow,
                "logical_date": item.day, "recipient": item.recipient, "place": item.place,
                "store": item.store, "path": item.path, "created": item.created, "due": item.due,
                "rule": item.rule, "as_of": self.as_of}

    def deleted(self, item: PurgeItem, size: int | None, sha256: str | None, check: str,
                note: str | None = None, dedupe: str | None = None, versions_deleted: int | None = None) -> None:
        if dedupe is None:
            dedupe = (Purged.remote_key(item.flow, item.recipient, item.path) if item.place == "remote"
                      else Purged.local_key(item.place, item.path, sha256, item.created))
        at = datetime.now(UTC)
        record = Purged(**self._common(item), key=dedupe, size=size, sha256=sha256, deleted_at=at, verified=check,
                        note=note, versions_deleted=versions_deleted, at=at)
        self.report.deleted += 1
        try:
            entry, _ = self.ledger.record(record)
        except TransferError as exc:
            # Deleted and checked, but not recorded: the record must not be lost with the ledger down.
            where = journal.keep(self.home, record)
            self.report.failed.append(f"{item.place} {item.flow} {item.path}: deleted and checked, but the ledger "
                                      f"is unavailable ({exc}); the record is kept in {where} and written to the "
                                      f"ledger on the next purge")
            return
        self.report.entries.append(entry.seq)

    def failed(self, item: PurgeItem, reason: str) -> None:
        at = datetime.now(UTC)
        self.report.failed.append(f"{item.place} {item.flow} {item.path}: {reason}; will retry on the next purge")
        try:
            self.ledger.record(PurgeFailed(**self._common(item), error=reason[:500], attempted_at=at, at=at))
        except TransferError as exc:  # the failure is still reported; the ledger being down is its own problem
            self.report.failed.append(f"ledger: could not record the failed deletion of {item.path}: {exc}")


def execute_purge(items: list[PurgeItem], settings: Settings, config: Config, ledger: Ledger,
                  connection: Callable[[str], ConnInfo], *, now: datetime | None = None) -> PurgeReport:
    """Delete each item, prove it is gone, record it; failures are recorded and stay due.

    Copies of a (flow, date) whose run is in progress, and what a legal hold covers, are held back
    (listed in ``held``). Received data is destroyed first (``received.destroy_due``).
    ``now`` only says which moment the plan was judged at (recorded as ``as_of``); the ledger
    always gets the real deletion time (``deleted_at`` and the entry's time).
    """
    now = now or datetime.now(UTC)
    report = PurgeReport()
    replayed = journal.replay(settings.home, ledger)  # records a previous purge could not write
    if replayed:
        log.info("journalled purge records written to the ledger", records=replayed)
    store = workstore.store_of(settings, connection)
    received.destroy_due([i for i in items if i.place in RECIPIENT_PLACES], settings, config, ledger, report,
                         now=now, store=store)
    rec = _Recorder(config, ledger, report, now, settings.home)
    busy: dict[str, set[date]] = {}
    todo: list[PurgeItem] = []
    for item in (i for i in items if i.place not in RECIPIENT_PLACES):
        ref = config.flow(item.flow)
        if item.flow not in busy:  # a run's marker is under this home, or in the S3 work store every worker sees
            busy[item.flow] = settings.layout.running_days(ref.agreement.id, ref.flow.id) | (
                workstore.running_days(store, settings, ref) if store is not None else set())
        running = busy[item.flow]
        if item.day and item.day in running:
            report.held.append(f"{item.place} {item.flow} {item.path}: run for {item.logical_date} in progress; "
                               f"kept until it ends")
        else:
            todo.append(item)

    for item in (i for i in todo if i.store == "local"):
        try:
            size, digest, check = local.delete(item)
        except FileNotFoundError:
            continue  # gone between plan and delete (another purge): nothing held, nothing to prove
        except OSError as exc:
            rec.failed(item, exc.strerror or str(exc))
            continue
        rec.deleted(item, size, digest, check)

    in_store = [i for i in todo if i.store == "s3" and i.place in (OUTBOX, RUNS, REPORTS, NOTICES, LOGS)]
    _purge_s3([i for i in todo if i.store == "s3" and i not in in_store], config, connection, rec)
    for item in in_store:
        assert store is not None  # only listed from it
        try:
            size, digest, count, check = workstore.delete(store, item)
        except TransferError as exc:
            rec.failed(item, str(exc))
            continue
        # A published report or log may be published again under its name (a re-run): each deletion its own record.
        dedupe = Purged.s3_key(item.path) if item.place in (OUTBOX, RUNS) else None
        rec.deleted(item, size, digest, check, dedupe=dedupe, versions_deleted=count)

    groups: dict[tuple[str, str], list[PurgeItem]] = {}
    for item in (i for i in todo if i.store == "sftp"):
        groups.setdefault((item.flow, item.recipient or ""), []).append(item)
    for (flow_key, _partner), group in groups.items():
        sftp.delete_group(group, config.flow(flow_key), connection, rec.deleted, rec.failed, settings=settings)

    for ref in config.flows():
        roots = [settings.layout.folder(place) for place, _key in _LOCAL]
        if ref.flow.retention.archive is not None and ref.flow.retention.archive.dir:
            roots.append(settings.layout.archive_root(ref.flow.retention.archive.dir))
        for root in roots:  # runs/ and outbox/ may be on a shared volume: their own root bounds them there
            bound = settings.layout.work_root if root.parent == settings.layout.work_root else settings.home
            local.prune_empty_dirs(root.joinpath(ref.agreement.id, ref.flow.id), root, bound)
    log.info("purge done", deleted=report.deleted, failed=len(report.failed), held=len(report.held))
    return report


def _purge_s3(items: list[PurgeItem], config: Config, connection: Callable[[str], ConnInfo], rec: _Recorder) -> None:
    from transfers.retention import s3

    clients: dict[str, object] = {}
    for item in items:
        archive = config.flow(item.flow).flow.retention.archive
        conn_id = archive.connection if archive is not None else None
        try:
            if conn_id is None:
                raise TransferError(f"flow {item.flow} no longer names an S3 archive; delete {item.path} by hand")
            if conn_id not in clients:
                clients[conn_id] = s3.client(connection(conn_id))
            count, check = s3.delete_all_versions(clients[conn_id], item.path)
        except TransferError as exc:
            rec.failed(item, str(exc))
            continue
        except ValueError as exc:  # boto3 refuses a malformed endpoint or region before any request
            rec.failed(item, f"connection {conn_id!r}: {exc}")
            continue
        rec.deleted(item, item.size, item.sha256, check, dedupe=Purged.s3_key(item.path),
                    note=None if count else "already absent", versions_deleted=count)
