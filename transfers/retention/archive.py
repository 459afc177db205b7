"""The archive of encrypted deliveries: a copy of what was sent, kept for ``retention.archive``.

Only ciphertext is archived (the recipient's key opens it, not ours), so the
archive proves what left without holding personal data in clear. Each archived
file is a ledger entry (an ``Archived`` record) with its place, size, hash and due
date; the purge deletes it when due and records that too. Archiving is
idempotent: a retry finds the ledger entry and does nothing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.agreement import ArchiveRetention, FlowRef
from transfers.connections import ConnInfo
from transfers.errors import ConfigError
from transfers.files import atomic_file, private_dir, sha256_file
from transfers.ledger.records import Archived
from transfers.logs import get_logger
from transfers.settings import HomeLayout

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.ledger import Ledger

log = get_logger(__name__)


def local_root(home: Path, archive: ArchiveRetention) -> Path:
    """The local archive folder, always strictly inside ``home`` (the agreement loader checks this too)."""
    return HomeLayout(home).archive_root(archive.dir)


def location(home: Path, archive: ArchiveRetention, ref: FlowRef, ds: str, partner: str, name: str) -> str:
    """Where one file of one delivery is archived (local path or ``s3://bucket/key``)."""
    parts = (*HomeLayout.delivery_parts(ref.agreement.id, ref.flow.id, date.fromisoformat(ds), partner), name)
    if archive.bucket:
        prefix = archive.prefix.strip("/")
        return f"s3://{archive.bucket}/" + "/".join(([prefix] if prefix else []) + list(parts))
    return str(local_root(home, archive).joinpath(*parts))


def archive_delivery(home: Path, ref: FlowRef, ds: str, partner: str, outbox: Path, names: list[str], ledger: Ledger,
                     connection: Callable[[str], ConnInfo] | None = None, *, now: datetime | None = None) -> dict:
    """Copy a delivery's encrypted files (and manifest) from ``outbox`` to the flow's archive.

    Returns:
        ``{"archived": n, "already": m}``; ``{}`` when the flow has no archive.

    Raises:
        ConfigError: An S3 archive is named but no way to resolve its connection was given.
        ArchiveUnavailable / ArchiveRefused: The S3 endpoint failed (an unavailable one is retried).
        OSError: The local archive could not be written.
    """
    archive = ref.flow.retention.archive
    if archive is None:
        return {}
    period = archive.period
    s3 = None
    if archive.bucket:
        if connection is None:
            raise ConfigError(f"{ref.path}: flow {ref.flow.id}: retention.archive is S3 bucket {archive.bucket!r} "
                              f"but no connection resolver was given for {archive.connection!r}")
        from transfers.retention import s3 as s3mod

        s3 = s3mod.client(connection(archive.connection or ""))
    done = already = 0
    for name in names:
        if ledger.find(Archived.key_for(ref.key, ds, partner, name)) is not None:
            already += 1
            continue
        source = outbox / name
        size, digest = source.stat().st_size, sha256_file(source)
        where = location(home, archive, ref, ds, partner, name)
        if s3 is not None:
            from transfers.retention import s3 as s3mod

            s3mod.put(s3, source, where, sha256=digest)
        else:
            target = Path(where)
            private_dir(target.parent)
            with source.open("rb") as src, atomic_file(target) as dst:
                shutil.copyfileobj(src, dst)
        at = now or datetime.now(UTC)
        ledger.record(Archived(agreement=ref.agreement.id, flow=ref.key, logical_date=datetime.fromisoformat(ds).date(),
                               recipient=partner, store="s3" if s3 is not None else "local", path=where, size=size,
                               sha256=digest, created=at, due=period.after(at),
                               rule=f"retention.archive {archive.period}", at=at))
        done += 1
    log.debug("archived", flow=ref.key, logical_date=ds, recipient=partner, files=done, already=already)
    return {"archived": done, "already": already}


def manifest_heads(home: Path, config: Config, connection: Callable[[str], ConnInfo] | None = None
                   ) -> tuple[list[tuple[int, str, str, str]], list[str], list[str]]:
    """The ``ledger_head`` of every delivery manifest in every flow's archive, for ``Ledger.verify``.

    Each manifest recorded the ledger's head when its delivery was sealed, and the
    archive keeps it for ``retention.archive``: a ledger cut short, emptied or rehashed
    since then no longer reaches, or no longer matches, that head.

    Returns:
        ``(heads, problems, unreachable)``: heads as ``(seq, hash, "archived manifest <where>",
        source)``; a manifest that cannot be read as one is a problem line naming it; an S3
        archive that could not be reached is one line in ``unreachable`` (not checked, not
        tampering: the rest of the verification still runs).
    """
    from transfers.errors import RetriableError

    heads: list[tuple[int, str, str, str]] = []
    problems: list[str] = []
    unreachable: list[str] = []
    source = "archived delivery manifests"

    def take(where: str, text: bytes | str) -> None:
        try:
            head = json.loads(text).get("ledger_head")
            if head is not None:
                heads.append((int(head["seq"]), str(head["hash"]), f"archived manifest {where}", source))
        except (ValueError, KeyError, TypeError, AttributeError):
            problems.append(f"archived manifest {where} cannot be read as a manifest (changed by hand?)")

    for ref in config.flows():
        archive = ref.flow.retention.archive
        if archive is None:
            continue
        if archive.bucket:
            if connection is None:
                raise ConfigError(f"{ref.path}: flow {ref.flow.id}: retention.archive is S3 bucket "
                                  f"{archive.bucket!r} but no connection resolver was given for {archive.connection!r}")
            from transfers.retention import s3 as s3mod

            prefix = "/".join([p for p in (archive.prefix.strip("/"),) if p] + [ref.agreement.id, ref.flow.id])
            try:
                found = s3mod.read_all(s3mod.client(connection(archive.connection or "")), archive.bucket,
                                       prefix + "/", suffix=".manifest.json")
            except RetriableError as exc:
                unreachable.append(f"flow {ref.key}: archive s3://{archive.bucket}/{prefix}/ not read ({exc})")
                continue
            for key, body in found:
                take(f"s3://{archive.bucket}/{key}", body)
        else:
            delivered = HomeLayout(home).dated("archive", ref.agreement.id, ref.flow.id,
                                               root=local_root(home, archive))
            for path in (p for d in delivered for p in sorted(d.path.glob("*.manifest.json"))):
                try:
                    take(str(path), path.read_bytes())
                except OSError as exc:
                    problems.append(f"archived manifest {path} cannot be read ({exc.strerror or exc})")
    return heads, problems, unreachable
