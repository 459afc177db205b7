"""Retention: delete what the agreement's periods say must go, and prove it.

Places a flow leaves copies in, each with its own period from the agreement:

=========  ==============================================  =====================
place      what                                            period
=========  ==============================================  =====================
staging    encrypted deliveries kept by the sender         ``retention.staging``
runs       working files a killed run could not clear      ``retention.staging``
reports    data owner's quality reports (they name rows)   ``retention.reports``
remote     the copy on the recipient's SFTP server         ``retention.remote``
=========  ==============================================  =====================

Every deletion is checked (the object is gone afterwards) and written to the
ledger with its size and hash, so IG can see a certificate of destruction. A
deletion that fails is reported and stays due, so the next purge tries again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from transfers.agreement import Config, FlowRef, retention_periods
from transfers.connections import ConnInfo
from transfers.errors import TransferError
from transfers.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class PurgeItem:
    place: str
    flow: str
    path: str  # local path, or the remote path relative to the SFTP login directory
    created: datetime
    due: datetime
    rule: str
    recipient: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass
class PurgeReport:
    deleted: int = 0
    failed: list[str] = field(default_factory=list)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _local_items(ref: FlowRef, place: str, root: Path, period, rule: str, now: datetime) -> Iterator[PurgeItem]:  # noqa: ANN001
    if not root.is_dir():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        created = _mtime(path)
        due = period.after(created)
        if due <= now:
            yield PurgeItem(place, ref.key, str(path), created, due, rule)


def plan_purge(settings, config: Config, ledger, *, now: datetime | None = None, only_flow: str | None = None) -> list[PurgeItem]:  # noqa: ANN001
    """Everything past its retention period at ``now``, in every place."""
    now = now or datetime.now(UTC)
    items: list[PurgeItem] = []
    for ref in config.flows():
        if only_flow and ref.key != only_flow:
            continue
        periods = retention_periods(ref.flow)
        base = (ref.agreement.id, ref.flow.id)
        runs_root = settings.home.joinpath("runs", *base)
        in_progress = {p.name for p in runs_root.iterdir()} if runs_root.is_dir() else set()
        for item in _local_items(ref, "staging", settings.home.joinpath("outbox", *base), periods["staging"],
                                 f"retention.staging {periods['staging']}", now):
            # A run still working on this date may need its outbox (it is reused on retry).
            if Path(item.path).relative_to(settings.home.joinpath("outbox", *base)).parts[0] not in in_progress:
                items.append(item)
        items.extend(_local_items(ref, "runs", runs_root, periods["staging"], f"retention.staging {periods['staging']}", now))
        items.extend(_local_items(ref, "reports", settings.home.joinpath("reports", *base), periods["reports"],
                                  f"retention.reports {periods['reports']}", now))
        for entry in ledger.entries(kind="disclosure", flow=ref.key):
            due = periods["remote"].after(entry.at)
            if due > now:
                continue
            for item in entry.payload.get("files", []):
                key = f"purge:remote:{ref.key}:{entry.recipient}:{item['remote_path']}"
                if ledger.find(key) is None:
                    items.append(PurgeItem("remote", ref.key, item["remote_path"], entry.at, due,
                                           f"retention.remote {periods['remote']}", entry.recipient,
                                           item.get("size"), item.get("sha256")))
    return items


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record(ledger, item: PurgeItem, config: Config, now: datetime, *, size, sha256, note: str | None = None) -> None:  # noqa: ANN001
    ref = config.flow(item.flow)
    dedupe = f"purge:{item.place}:{item.flow}:{item.recipient}:{item.path}" if item.place == "remote" else \
        f"purge:{item.place}:{item.path}:{sha256}:{item.created.isoformat()}"
    ledger.append(
        "purge",
        agreement=ref.agreement.id,
        flow=item.flow,
        recipient=item.recipient,
        dedupe_key=dedupe,
        payload={
            "place": item.place,
            "path": item.path,
            "size": size,
            "sha256": sha256,
            "created": item.created.isoformat(timespec="seconds"),
            "due": item.due.isoformat(timespec="seconds"),
            "deleted_at": now.isoformat(timespec="seconds"),
            "rule": item.rule,
            **({"note": note} if note else {}),
        },
    )


def _delete_local(item: PurgeItem) -> tuple[int, str]:
    path = Path(item.path)
    size, digest = path.stat().st_size, _sha256(path)
    path.unlink()
    if path.exists():
        raise OSError(f"{path} still exists after deletion")
    return size, digest


def _prune_empty_dirs(root: Path) -> None:
    if not root.is_dir():
        return
    for directory in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            directory.rmdir()
        except OSError:
            pass


def execute_purge(items: list[PurgeItem], settings, config: Config, ledger,  # noqa: ANN001
                  connection: Callable[[str], ConnInfo], *, now: datetime | None = None) -> PurgeReport:
    """Delete each item, prove it is gone, record it; failures stay due for next time."""
    from transfers.delivery import open_sftp, remove_remote
    from transfers.pipeline import sftp_target

    now = now or datetime.now(UTC)
    report = PurgeReport()
    for item in (i for i in items if i.place != "remote"):
        try:
            size, digest = _delete_local(item)
        except OSError as exc:
            report.failed.append(f"{item.place} {item.path}: {exc.strerror or exc}; will retry on the next purge")
            continue
        _record(ledger, item, config, now, size=size, sha256=digest)
        report.deleted += 1
    by_recipient: dict[tuple[str, str], list[PurgeItem]] = {}
    for item in (i for i in items if i.place == "remote"):
        by_recipient.setdefault((item.flow, item.recipient or ""), []).append(item)
    for (flow_key, partner), group in by_recipient.items():
        ref = config.flow(flow_key)
        recipient = next((r for r in ref.flow.to if r.partner == partner), None)
        if recipient is None:
            report.failed.append(f"remote {flow_key} {partner}: no longer a recipient of this flow; delete by hand")
            continue
        try:
            target = sftp_target(connection(recipient.sftp), recipient)
            with open_sftp(target) as session:
                for item in group:
                    existed = remove_remote(session, item.path)
                    note = None if existed else "already removed (collected by the recipient)"
                    _record(ledger, item, config, now, size=item.size, sha256=item.sha256, note=note)
                    report.deleted += 1
        except TransferError as exc:
            report.failed.append(f"remote {flow_key} {partner}: {exc}; will retry on the next purge")
    for place in ("outbox", "runs", "reports"):
        _prune_empty_dirs(settings.home / place)
    log.info("purge done", deleted=report.deleted, failed=len(report.failed))
    return report

