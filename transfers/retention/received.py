"""At a recipient: destroy received data on the controller's date, unless a legal hold keeps it.

Two places, only at a deployment with ``TRANSFERS_PARTY`` set that receives flows (with no party,
nothing here runs):

``received``
    The rows of one delivery in the store. Due on its ``destroy_by`` (the controller's date the
    signed manifest carried, kept per row and in the register), judged at the purge's ``now``.
    ``ReceivedStore.destroy`` deletes them in one transaction; then they are counted again after
    the commit, and a ``Destroyed`` record goes to our ledger. A delivery under a legal hold is
    kept whole; under a subject hold, its other rows go and the subject's stay (a partial
    ``Destroyed`` record), until the hold is lifted. A destruction the ledger could not record
    (it was down) is in the store's register and is recorded by the next purge.
``quarantine``
    A rejected delivery's folder (still encrypted, with ``reason.json``). Due on the manifest's
    ``destroy_by`` when ``reason.json`` carries one (the manifest was signed and readable);
    otherwise ``retention.staging`` of the flow after ``quarantined_at``: evidence of a rejection
    is kept as briefly as a working copy, since no controller's date was ever accepted for it.
    Its files are deleted, the folder removed and checked gone. A delivery hold keeps it too. With an S3
    work store, folders published there (``transfers.retention.quarantine_store``) are found and destroyed
    alike, by any worker.

A failure is recorded (``PurgeFailed``), reported, and stays due.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfers.agreement import Config, FlowRef, receiving_flows
from transfers.errors import ConfigError, DestructionFailed, TransferError
from transfers.files import sha256_size
from transfers.ledger.records import Destroyed, PurgeFailed, RemoteFile
from transfers.logs import get_logger
from transfers.receipt import delivery_id as delivery_id_of
from transfers.retention import journal, local
from transfers.retention.holds import Hold, active_holds
from transfers.retention.items import PurgeItem, PurgeReport
from transfers.settings import QUARANTINE

if TYPE_CHECKING:
    from transfers.ledger import Ledger
    from transfers.receive.register import ReceivedDelivery
    from transfers.receive.store import ReceivedStore
    from transfers.settings import Settings
    from transfers.workstore.objects import WorkObjects

__all__ = ["ReceivedItem", "destroy_due", "held"]

log = get_logger(__name__)

REASON_FILE = "reason.json"  # transfers.receive.quarantine.REASON_FILE, not imported: that module moves files


@dataclass(frozen=True)
class ReceivedItem(PurgeItem):
    """A received delivery's rows (``place`` ``received``) or quarantined files (``quarantine``)."""

    delivery_id: str = ""
    sender: str = ""
    controller: str = ""
    destroy_by: date | None = None
    manifest_sha256: str | None = None
    subject_column: str | None = None
    keep: tuple[str, ...] = field(default=(), repr=False)  # pseudonyms under a subject hold, found in it
    held_rows: int = 0
    subject_hold: str | None = None  # the subject holds that keep ``held_rows``, described
    unrecorded: bool = False  # destroyed in the store already; only the ledger record is missing


def held(settings: Settings, config: Config, ledger: Ledger, *, only_flow: str | None = None,
         store: WorkObjects | None = None) -> list[PurgeItem]:
    """Every received delivery not wholly destroyed, and every quarantined one (here, and in the S3 work
    ``store`` when there is one), due or not."""
    if settings.party is None or not (inbound := receiving_flows(config, settings.party)):
        return []
    holds = active_holds(ledger)
    items: list[PurgeItem] = []
    if settings.store_url is not None or settings.layout.store_db.exists():
        from transfers.receive.store import ReceivedStore

        with ReceivedStore(settings.store_database) as rows:
            items += _rows_held(rows, settings.party, config, ledger, holds, only_flow)
    for ref in (i.ref for i in inbound if only_flow in (None, i.key)):
        items += _quarantined(settings, settings.party, ref, holds)
        if store is not None:
            items += _quarantined_in_store(store, settings, settings.party, ref, holds)
    return items


def _flow(config: Config, key: str) -> FlowRef | None:
    try:
        return config.flow(key)
    except ConfigError:
        return None  # received under an agreement no longer held: still destroyed on its date


def _rule(ref: FlowRef | None, destroy_by: date) -> tuple[str, str]:
    if ref is None:
        return "", f"destroy_by {destroy_by} (manifest; the agreement is no longer in the config)"
    retention = ref.agreement.retention
    return retention.controller, f"controller {retention.controller} {retention.period} (manifest)"


def _rows_held(store: ReceivedStore, me: str, config: Config, ledger: Ledger, holds: list[Hold],
               only_flow: str | None) -> list[PurgeItem]:
    recorded = {r.dedupe_key() for r in ledger.records(Destroyed) if r.complete and r.place == "received"}
    items: list[PurgeItem] = []
    for d in store.deliveries():
        key = f"{d.agreement}.{d.flow}"
        if only_flow not in (None, key):
            continue
        ref = _flow(config, key)
        if d.destroyed_at is not None and Destroyed.key_for(d.delivery_id) in recorded:
            continue
        controller, rule = _rule(ref, d.destroy_by)
        column = ref.flow.subject if ref is not None and ref.flow.subject in ref.flow.shared_fields else None
        item = ReceivedItem("received", key, d.delivery_id, d.received_at,
                            datetime.combine(d.destroy_by, time.min, UTC), rule, me, day=d.logical_date,
                            store="database", delivery_id=d.delivery_id, sender=d.sender, controller=controller,
                            destroy_by=d.destroy_by, manifest_sha256=d.manifest_sha256, subject_column=column)
        if d.destroyed_at is not None:
            items.append(_replace(item, unrecorded=True, detail=f"{d.rows_destroyed} rows destroyed "
                                  f"{d.destroyed_at:%Y-%m-%d %H:%M}; its ledger record is written now"))
        else:
            items.append(_with_holds(item, d, ref, holds, store))
    return items


def _with_holds(item: ReceivedItem, d: ReceivedDelivery, ref: FlowRef | None, holds: list[Hold],
                store: ReceivedStore) -> ReceivedItem:
    left = d.rows - d.rows_destroyed
    whole = [h for h in holds if h.scope == "delivery" and h.target == d.delivery_id]
    if whole:
        return _replace(item, hold="; ".join(h.describe() for h in whole), detail=f"{left} rows")
    subjects = [h for h in holds if h.scope == "subject" and h.agreement == d.agreement]
    if not subjects:
        return _replace(item, detail=f"{left} rows")
    if ref is None:
        return _replace(item, detail=f"{left} rows",
                        hold=f"subject holds are in force in {d.agreement} and the flow is no longer in the "
                             f"config, so which column names the subject is unknown: kept whole")
    if item.subject_column is None:
        return _replace(item, detail=f"{left} rows")  # the subject is not shared: no row can be a held subject's
    keep = tuple(sorted({h.target for h in subjects}))
    kept = store.subject_rows(d.delivery_id, item.subject_column, keep)
    if not kept:
        return _replace(item, detail=f"{left} rows")
    found = "; ".join(h.describe() for h in subjects)
    return _replace(item, keep=keep, held_rows=kept, subject_hold=found,
                    detail=f"{left} rows, {kept} of them kept: {found}")


def _replace(item: ReceivedItem, **changes: Any) -> ReceivedItem:
    from dataclasses import replace

    return replace(item, **changes)


def _quarantined(settings: Settings, me: str, ref: FlowRef, holds: list[Hold]) -> list[PurgeItem]:
    items: list[PurgeItem] = []
    for found in settings.layout.quarantined(ref.agreement.id, ref.flow.id):
        reason = _reason(found.path)
        files = [p for p in found.path.rglob("*") if p.is_file()]
        quarantined_at = _moment(reason.get("quarantined_at")) or _newest(found.path, files)
        items.append(_quarantine_item(me, ref, holds, reason, str(found.path), found.day, found.partner or "",
                                      quarantined_at, len(files), "local"))
    return items


def _quarantined_in_store(store: WorkObjects, settings: Settings, me: str, ref: FlowRef,
                          holds: list[Hold]) -> list[PurgeItem]:
    from transfers.retention.quarantine_store import stored_folders

    items: list[PurgeItem] = []
    for found in stored_folders(store, settings, ref.agreement.id, ref.flow.id):
        quarantined_at = _moment(found.reason.get("quarantined_at")) or max(obj.modified for obj in found.files)
        items.append(_quarantine_item(me, ref, holds, found.reason, store.place.url(found.relative), found.day,
                                      found.sender, quarantined_at, len(found.files), "s3"))
    return items


def _quarantine_item(me: str, ref: FlowRef, holds: list[Hold], reason: dict[str, Any], path: str, day: date,
                     sender: str, quarantined_at: datetime, count: int, where: str) -> ReceivedItem:
    staging = ref.flow.retention.staging
    destroy_by = _day(reason.get("destroy_by"))
    delivery = str(reason.get("delivery_id") or delivery_id_of(ref.agreement.id, ref.flow.id, day.isoformat(), me))
    if destroy_by is not None:
        controller, rule = _rule(ref, destroy_by)
        due = datetime.combine(destroy_by, time.min, UTC)
    else:
        controller = ref.agreement.retention.controller
        rule, due = f"retention.staging {staging} after quarantine (no readable manifest)", \
            staging.after(quarantined_at)
    hold = "; ".join(h.describe() for h in holds if h.scope == "delivery" and h.target == delivery) or None
    return ReceivedItem("quarantine", ref.key, path, quarantined_at, due, rule, me, day=day, hold=hold,
                        detail=f"{count} files", store=where, delivery_id=delivery, sender=sender,
                        controller=controller, destroy_by=destroy_by, manifest_sha256=reason.get("manifest_sha256"))


def _reason(folder: Path) -> dict[str, Any]:
    try:
        document = json.loads((folder / REASON_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # written last: a crash mid-quarantine leaves none, and the files' own age counts
    return document if isinstance(document, dict) else {}


def _moment(text: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None


def _newest(folder: Path, files: list[Path]) -> datetime:
    return datetime.fromtimestamp(max([folder.stat().st_mtime, *(p.stat().st_mtime for p in files)]), UTC)


# ---------------------------------------------------------------------- carrying out


class _Outcome:
    """Writes each destruction or failure to the ledger and the report (at the real time; ``as_of`` the plan's)."""

    def __init__(self, settings: Settings, config: Config, ledger: Ledger, report: PurgeReport, as_of: datetime):
        self.settings, self.config, self.ledger, self.report, self.as_of = settings, config, ledger, report, as_of

    def agreement(self, item: ReceivedItem) -> str:
        return item.delivery_id.split(":", 1)[0] or item.flow.split(".", 1)[0]

    def destroyed(self, item: ReceivedItem, record: Destroyed) -> None:
        try:
            entry, created = self.ledger.record(record)
        except TransferError as exc:
            if item.place == "quarantine":
                where = journal.keep(self.settings.home, record)
                kept = f"the record is kept in {where} and written to the ledger on the next purge"
            else:
                kept = "the store's register keeps it and the next purge records it"
            self.report.deleted += 1
            self.report.failed.append(f"{item.place} {item.flow} {item.delivery_id}: destroyed and checked, but the "
                                      f"ledger is unavailable ({exc}); {kept}")
            return
        if created:
            self.report.deleted += 1
            self.report.entries.append(entry.seq)

    def failed(self, item: ReceivedItem, reason: str) -> None:
        at = datetime.now(UTC)
        self.report.failed.append(f"{item.place} {item.flow} {item.delivery_id}: {reason}; will retry on the next "
                                  f"purge")
        try:
            self.ledger.record(PurgeFailed(agreement=self.agreement(item), flow=item.flow, logical_date=item.day,
                                           recipient=item.recipient, place=item.place, store=item.store,
                                           path=item.path, created=item.created, due=item.due, rule=item.rule,
                                           as_of=self.as_of, error=reason[:500], attempted_at=at, at=at))
        except TransferError as exc:
            self.report.failed.append(f"ledger: could not record the failed destruction of {item.delivery_id}: {exc}")

    def record(self, item: ReceivedItem, **fields: Any) -> Destroyed:
        at = datetime.now(UTC)
        return Destroyed(agreement=self.agreement(item), flow=item.flow, logical_date=item.day,
                         recipient=item.recipient, place=item.place, delivery_id=item.delivery_id,
                         sender=item.sender, controller=item.controller,
                         destroy_by=item.destroy_by.isoformat() if item.destroy_by else None, rule=item.rule,
                         manifest_sha256=item.manifest_sha256, created=item.created, as_of=self.as_of, at=at,
                         **{"destroyed_at": at, **fields})


def destroy_due(items: list[PurgeItem], settings: Settings, config: Config, ledger: Ledger, report: PurgeReport,
                *, now: datetime, store: WorkObjects | None = None) -> None:
    """Destroy each due received delivery and quarantined folder not under a hold; record each in the ledger."""
    mine = [i for i in items if isinstance(i, ReceivedItem)]
    if not mine:
        return
    out = _Outcome(settings, config, ledger, report, now)
    for item in (i for i in mine if i.hold):
        report.held.append(f"{item.place} {item.flow} {item.delivery_id}: {item.hold}")
    rows = [i for i in mine if i.place == "received" and not i.hold]
    if rows:
        from transfers.receive.store import ReceivedStore

        with ReceivedStore(settings.store_database) as received_store:
            for item in rows:
                _destroy_rows(item, received_store, out)
    for item in (i for i in mine if i.place == "quarantine" and not i.hold):
        if item.store == "s3":
            _destroy_stored(item, store, out)
        else:
            _destroy_folder(item, out)
    root = settings.layout.folder(QUARANTINE)
    for flow in {i.flow for i in mine if i.place == "quarantine"}:
        local.prune_empty_dirs(root.joinpath(*flow.split(".", 1)), root, settings.home)


def _destroy_rows(item: ReceivedItem, store: ReceivedStore, out: _Outcome) -> None:
    column, keep = item.subject_column, item.keep
    try:
        if not item.unrecorded:
            store.destroy(item.delivery_id, subject_column=column, keep=keep)
        after = store.delivered(item.delivery_id)
        left = store.remaining(item.delivery_id, subject_column=column, keep=keep)
        if after is None or left:
            raise DestructionFailed(f"{left} rows of delivery {item.delivery_id} are still in the store "
                                    f"after its destruction")
    except TransferError as exc:
        out.failed(item, str(exc))
        return
    complete = after.destroyed_at is not None
    if after.rows_destroyed or complete:
        others = " other than the held subjects'" if item.keep else ""
        out.destroyed(item, out.record(
            item, rows=after.rows_destroyed, held_rows=0 if complete else item.held_rows, complete=complete,
            path=after.table_name, destroyed_at=after.destroyed_at or datetime.now(UTC),
            verified=f"absent after deletion: no row of the delivery{others} left in {after.table_name} "
                     f"(SELECT count(*) after the commit)"))
    if not complete:
        out.report.held.append(f"received {item.flow} {item.delivery_id}: {item.held_rows} rows kept: "
                               f"{item.subject_hold}")


def _destroy_stored(item: ReceivedItem, store: WorkObjects | None, out: _Outcome) -> None:
    from transfers.retention.quarantine_store import delete_folder

    if store is None:
        out.failed(item, "the S3 work store holding it is no longer TRANSFERS_WORK_STORE; delete it by hand")
        return
    relative = item.path[len(store.place.url("")):]
    try:
        files, check = delete_folder(store, relative)
    except TransferError as exc:
        out.failed(item, str(exc))
        return
    if files:
        out.destroyed(item, out.record(item, rows=0, path=item.path, files=files, verified=check))


def _destroy_folder(item: ReceivedItem, out: _Outcome) -> None:
    folder = Path(item.path)
    files: list[RemoteFile] = []
    try:
        # Bottom up, never following a link: a link is removed as a link, its target left alone.
        for top, dirs, names in os.walk(folder, topdown=False, followlinks=False):
            for name in sorted(names) + [d for d in sorted(dirs) if (Path(top) / d).is_symlink()]:
                path = Path(top) / name
                size, digest = (0, None) if path.is_symlink() else sha256_size(path)
                files.append(RemoteFile(str(path.relative_to(folder)), size, digest))
                path.unlink()
            for name in dirs:
                if not (Path(top) / name).is_symlink():
                    (Path(top) / name).rmdir()
        folder.rmdir()
        if folder.exists() or folder.is_symlink():
            raise OSError(f"{folder} is still there after deletion")
    except FileNotFoundError:
        if not files:
            return  # gone between plan and delete (another purge): nothing to prove
        out.failed(item, f"{folder} changed while it was being destroyed")
        return
    except OSError as exc:
        out.failed(item, exc.strerror or str(exc))
        return
    listed = tuple(sorted(files, key=lambda f: f.remote_path))
    out.destroyed(item, out.record(item, rows=0, path=str(folder), files=listed,
                                   verified="absent after deletion (stat: no such folder)"))
