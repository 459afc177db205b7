"""The recipient's store: one SQL table per inbound flow, and a register of every delivery loaded.

A verified delivery goes into ``received_<agreement>_<flow>`` (the agreement's fields as TEXT
columns, plus ``delivery_id``, ``logical_date``, ``received_at`` and ``destroy_by``) in one
transaction together with its row in ``received_deliveries``, so a delivery is either wholly
loaded and registered or not there at all. Loading is idempotent on the delivery id: the same
delivery (same manifest SHA-256) received twice loads once; a different manifest under an id
already loaded is a replay and is rejected.

Loads into the same flow table run one at a time (``BEGIN IMMEDIATE`` on SQLite, a
transaction-level advisory lock on PostgreSQL), so two loads of one delivery at once load it
once and the second never reads its parts. The primary key on ``delivery_id`` is the backstop.

Destruction (``due``, ``destroy``): the rows of a delivery whose ``destroy_by`` has come are
deleted in one transaction under the same lock, counted gone before the commit, and the register
row keeps ``rows_destroyed`` and ``destroyed_at`` (set once no row is left). The register keeps the
state rather than the ledger alone because it commits with the DELETE: a crash between the store
and the ledger leaves a destruction the next purge records, never one claimed but not done. A store
made before these columns existed gets them (``ALTER TABLE ... ADD COLUMN``, nullable) the first
time it is opened. A destroyed delivery stays registered, so a replay of it is not loaded again.

Engines are made with ``hide_parameters`` (``transfers.receive.engine``): a driver error never
carries record values into a log or a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from transfers.errors import ConfigError, DeliveryRejected, DestructionFailed, StoreUnavailable
from transfers.ledger.store import mask_url
from transfers.logs import get_logger
from transfers.receive.engine import store_engine
from transfers.receive.register import (
    DELIVERIES_TABLE,
    ReceivedDelivery,
    add_later_columns,
    count_rows,
    deliveries_table,
    delivery_of,
    doomed_rows,
    utc,
)

__all__ = ["BATCH_ROWS", "DELIVERIES_TABLE", "LoadResult", "ReceivedDelivery", "ReceivedStore", "table_name"]

log = get_logger(__name__)

#: Columns every flow table has besides the agreement's fields.
META_COLUMNS = ("delivery_id", "logical_date", "received_at", "destroy_by")
#: Rows sent to the database per ``executemany``: memory stays bounded by one batch plus one part.
BATCH_ROWS = 1000
#: PostgreSQL's identifier limit (NAMEDATALEN - 1, in bytes); longer names are silently cut there.
MAX_NAME = 63
_DIGEST = 8


def table_name(agreement: str, flow: str) -> str:
    """The flow's table: ``received_<agreement>_<flow>``, lower-case, non-alphanumerics as ``_``, at most 63 chars.

    A longer name is cut and ends in ``_`` plus 8 hex digits of its SHA-256, so two long names
    that share a beginning still get different tables.
    """
    return _shorten(re.sub(r"[^a-z0-9]", "_", f"received_{agreement}_{flow}".lower()))


def _shorten(name: str) -> str:
    if len(name.encode("utf-8")) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:_DIGEST]
    return f"{name[:MAX_NAME - _DIGEST - 1]}_{digest}"


@dataclass(frozen=True)
class LoadResult:
    """What :meth:`ReceivedStore.load` did: ``rows`` of the delivery are in ``table``.

    ``already_loaded`` is True when an earlier load had registered the delivery (then ``rows``
    is what that load registered and nothing was inserted now).
    """

    rows: int
    table: str
    already_loaded: bool


def _flow_table(name: str, fields: Sequence[str]) -> sa.Table:
    # Field columns get positional keys: the agreement's names may hold characters a bind
    # parameter name cannot, and SQLAlchemy quotes the real names in the DDL and the INSERT.
    return sa.Table(
        name, sa.MetaData(),
        *(sa.Column(field, sa.Text, key=f"_f{i}") for i, field in enumerate(fields)),
        sa.Column("delivery_id", sa.Text, nullable=False),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroy_by", sa.Date, nullable=False),
        sa.Index(_shorten(f"ix_{name}_delivery_id"), "delivery_id"),
    )


def _check_fields(fields: Sequence[str], table: str) -> list[str]:
    """The fields as column names, or a ConfigError naming every problem (names only)."""
    problems, seen = [], set(c.casefold() for c in META_COLUMNS)
    if not fields:
        problems.append(f"store table {table}: the flow shares no fields")
    for field in fields:
        if not field or len(field.encode("utf-8")) > MAX_NAME:
            problems.append(f"store table {table}: field {field!r} is not a column name "
                            f"(1 to {MAX_NAME} bytes)")
        elif field.casefold() in seen:
            # SQLite compares column names without case, so "ID" and "id" would be one column there.
            problems.append(f"store table {table}: field {field!r} repeats a column name "
                            f"(the fields or {', '.join(META_COLUMNS)})")
        seen.add(field.casefold())
    if problems:
        raise ConfigError(problems)
    return list(fields)


def _lock_key(name: str) -> int:
    digest = hashlib.sha256(f"isp-transfers-store:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class ReceivedStore:
    """The recipient's store at ``url`` (SQLite or PostgreSQL, a SQLAlchemy URL); close it, or use ``with``.

    Raises:
        ConfigError: The URL is malformed, its dialect unsupported, or a SQLite folder missing.
    """

    def __init__(self, url: str) -> None:
        self.masked_url = mask_url(url)
        self.engine = store_engine(url, self.masked_url)
        self.deliveries_table = deliveries_table(sa.MetaData())
        self._registered = False

    def __enter__(self) -> ReceivedStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ------------------------------------------------------------------ loading

    def load(self, *, delivery_id: str, manifest_sha256: str, agreement: str, agreement_version: str,
             flow: str, logical_date: date, sender: str, received_at: datetime, destroy_by: date,
             fields: list[str], parts: Iterable[list[dict[str, str | None]]]) -> LoadResult:
        """Load one verified delivery's rows and register it, in one transaction.

        ``parts`` is read lazily, one part at a time, and not at all when the delivery is
        already loaded. Every row must have exactly ``fields`` as keys. An exception raised by
        ``parts`` (``DeliveryRejected`` from verification) rolls the whole delivery back and
        propagates; the flow table may stay created.

        Raises:
            DeliveryRejected: The id was already loaded from a different manifest (a replay), or
                a row's keys are not the fields.
            ConfigError: The flow table exists with other columns than ``fields`` (names the
                missing and extra columns), or a field is not usable as a column name.
        """
        if received_at.tzinfo is None:
            raise ValueError("received_at must be timezone-aware")
        table = table_name(agreement, flow)
        flow_table = _flow_table(table, _check_fields(fields, table))
        meta = {"delivery_id": delivery_id, "logical_date": logical_date,
                "received_at": utc(received_at), "destroy_by": destroy_by}
        try:
            self._register()
            with self._writing(table) as conn:
                found = self._find(conn, delivery_id)
                if found is not None:
                    return _already(found, manifest_sha256)
                self._ensure_flow_table(conn, flow_table, fields)
                rows = _insert_rows(conn, flow_table, fields, parts, meta)
                conn.execute(self.deliveries_table.insert().values(
                    **meta, agreement=agreement, agreement_version=agreement_version, flow=flow,
                    sender=sender, manifest_sha256=manifest_sha256, rows=rows, table_name=table))
        except sa.exc.IntegrityError:
            # Another load registered the same delivery between our check and our insert
            # (only possible when something bypasses our lock): what it loaded stands.
            found = self.delivered(delivery_id)
            if found is None:
                raise
            return _already(found, manifest_sha256)
        except sa.exc.OperationalError as exc:
            # Down, restarting, or a lock wait that ran out: nothing was committed, a later attempt loads it.
            raise StoreUnavailable(f"store {self.masked_url}: {type(exc.orig).__name__ if exc.orig else 'error'} "
                                   f"while loading delivery {delivery_id}; nothing was loaded, it is tried "
                                   f"again") from None
        log.info("delivery loaded", delivery_id=delivery_id, table=table, rows=rows)
        return LoadResult(rows=rows, table=table, already_loaded=False)

    def _ensure_flow_table(self, conn: Connection, flow_table: sa.Table, fields: list[str]) -> None:
        inspector = sa.inspect(conn)
        if not inspector.has_table(flow_table.name):
            flow_table.create(conn)
            log.info("store table created", table=flow_table.name, columns=len(fields))
            return
        have = [column["name"] for column in inspector.get_columns(flow_table.name)]
        want = [*fields, *META_COLUMNS]
        missing = [name for name in want if name not in have]
        extra = [name for name in have if name not in want]
        if missing or extra:
            raise ConfigError(
                f"store table {flow_table.name} in {self.masked_url} does not have the flow's columns: "
                f"missing {', '.join(missing) or 'none'}; extra {', '.join(extra) or 'none'}. "
                f"The agreement's fields changed: move the old table aside (rename it) or fix the agreement")

    # ------------------------------------------------------------------ reading

    def delivered(self, delivery_id: str) -> ReceivedDelivery | None:
        """The registered delivery with this id, or None when it was never loaded."""
        if not self._upgrade():
            return None
        with self.engine.connect() as conn:
            return self._find(conn, delivery_id)

    def deliveries(self, agreement: str | None = None, flow: str | None = None) -> list[ReceivedDelivery]:
        """Registered deliveries, oldest logical date first, optionally of one agreement and/or flow."""
        table = self.deliveries_table
        query = sa.select(table).order_by(table.c.logical_date, table.c.delivery_id)
        if agreement is not None:
            query = query.where(table.c.agreement == agreement)
        if flow is not None:
            query = query.where(table.c.flow == flow)
        if not self._upgrade():
            return []
        with self.engine.connect() as conn:
            return [delivery_of(row._mapping) for row in conn.execute(query)]

    def _find(self, conn: Connection, delivery_id: str) -> ReceivedDelivery | None:
        table = self.deliveries_table
        row = conn.execute(sa.select(table).where(table.c.delivery_id == delivery_id)).first()
        return None if row is None else delivery_of(row._mapping)

    # ------------------------------------------------------------------ destruction

    def due(self, now: datetime) -> list[ReceivedDelivery]:
        """Deliveries not wholly destroyed whose ``destroy_by`` is on or before ``now``'s UTC date, oldest first."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return [d for d in self.deliveries() if d.is_due(now)]

    def destroy(self, delivery_id: str, *, subject_column: str | None = None, keep: Collection[str] = (),
                at: datetime | None = None) -> int:
        """Delete the delivery's rows in one transaction and mark it in the register; returns the rows deleted.

        Rows whose ``subject_column`` holds a value in ``keep`` (subjects under a legal hold) stay;
        the delivery is then not wholly destroyed (``destroyed_at`` stays empty) and a later call
        deletes them. Before the commit the rows meant to go are counted: any left rolls back.
        A delivery already destroyed returns 0.

        Raises:
            DestructionFailed: The delivery is not registered, its table is gone, or rows were left.
            StoreUnavailable: The database could not be reached; nothing was deleted.
        """
        at = utc(at or datetime.now(UTC))
        found = self.delivered(delivery_id)
        if found is None:
            raise DestructionFailed(f"store {self.masked_url}: delivery {delivery_id} is not registered")
        flow_table, doomed = doomed_rows(found, subject_column, keep)
        try:
            with self._writing(found.table_name) as conn:
                current = self._find(conn, delivery_id)
                if current is None or current.destroyed_at is not None:
                    return 0
                if not sa.inspect(conn).has_table(found.table_name):
                    raise DestructionFailed(f"store {self.masked_url}: table {found.table_name} of delivery "
                                            f"{delivery_id} is missing; nothing was destroyed")
                deleted = conn.execute(sa.delete(flow_table).where(doomed)).rowcount
                if count_rows(conn, flow_table, doomed):
                    raise DestructionFailed(f"store {self.masked_url}: rows of delivery {delivery_id} are still in "
                                            f"{found.table_name} after the DELETE; rolled back")
                kept = count_rows(conn, flow_table, flow_table.c.delivery_id == delivery_id)
                register = self.deliveries_table
                conn.execute(register.update().where(register.c.delivery_id == delivery_id).values(
                    rows_destroyed=current.rows_destroyed + deleted, destroyed_at=None if kept else at))
        except sa.exc.OperationalError as exc:
            raise StoreUnavailable(f"store {self.masked_url}: {type(exc.orig).__name__ if exc.orig else 'error'} "
                                   f"while destroying delivery {delivery_id}; nothing was destroyed") from None
        log.info("delivery destroyed", delivery_id=delivery_id, table=found.table_name, rows=deleted, kept=kept)
        return deleted

    def remaining(self, delivery_id: str, *, subject_column: str | None = None, keep: Collection[str] = ()) -> int:
        """Rows of the delivery still in its table, but those of subjects in ``keep`` (0 if the table is gone)."""
        found = self.delivered(delivery_id)
        if found is None:
            return 0
        flow_table, doomed = doomed_rows(found, subject_column, keep)
        with self.engine.connect() as conn:
            return count_rows(conn, flow_table, doomed) if sa.inspect(conn).has_table(found.table_name) else 0

    def subject_rows(self, delivery_id: str, subject_column: str, subjects: Collection[str]) -> int:
        """How many of the delivery's rows hold one of ``subjects`` in ``subject_column``."""
        found = self.delivered(delivery_id)
        if found is None or not subjects:
            return 0
        flow_table = sa.table(found.table_name, sa.column("delivery_id"), sa.column(subject_column))
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(found.table_name):
                return 0
            return count_rows(conn, flow_table, (flow_table.c.delivery_id == delivery_id)
                          & flow_table.c[subject_column].in_(list(subjects)))

    # ------------------------------------------------------------------ transactions

    def _register(self) -> None:
        """Create ``received_deliveries`` once, under a lock so two first loads do not both create it."""
        if self._registered:
            return
        with self._writing(DELIVERIES_TABLE) as conn:
            if not sa.inspect(conn).has_table(DELIVERIES_TABLE):
                self.deliveries_table.create(conn)
            add_later_columns(conn)
        self._registered = True

    def _upgrade(self) -> bool:
        """Give an older register the columns added since (once); False when there is no register yet."""
        if self._registered:
            return True
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(DELIVERIES_TABLE):
                return False
        self._register()
        return True

    @contextlib.contextmanager
    def _writing(self, name: str) -> Iterator[Connection]:
        """A transaction that holds the write lock for table ``name`` until it ends."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn = conn.execution_options(store_begin="BEGIN IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(name))))
                yield conn


def _already(found: ReceivedDelivery, manifest_sha256: str) -> LoadResult:
    if found.manifest_sha256 != manifest_sha256:
        raise DeliveryRejected(
            f"delivery {found.delivery_id} was already loaded from another manifest "
            f"(sha256 {found.manifest_sha256[:16]}…): a resend or replay is not loaded twice")
    log.info("delivery already loaded", delivery_id=found.delivery_id, table=found.table_name)
    return LoadResult(rows=found.rows, table=found.table_name, already_loaded=True)


def _insert_rows(conn: Connection, flow_table: sa.Table, fields: list[str],
                 parts: Iterable[list[dict[str, str | None]]], meta: Mapping[str, Any]) -> int:
    keys = [f"_f{i}" for i in range(len(fields))]
    wanted = set(fields)
    insert = flow_table.insert()
    batch: list[dict[str, Any]] = []
    total = 0
    for part in parts:
        for row in part:
            if row.keys() != wanted:
                raise DeliveryRejected(
                    f"delivery {meta['delivery_id']}: a row's columns are not the flow's fields "
                    f"(missing {sorted(wanted - row.keys())}, extra {sorted(row.keys() - wanted)})")
            params = dict(meta)
            params.update(zip(keys, (row[field] for field in fields), strict=True))
            batch.append(params)
            if len(batch) >= BATCH_ROWS:
                conn.execute(insert, batch)
                total += len(batch)
                batch = []
    if batch:
        conn.execute(insert, batch)
        total += len(batch)
    return total
