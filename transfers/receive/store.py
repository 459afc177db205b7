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

Engines are made with ``hide_parameters``: a driver error never carries record values into a
log or a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from transfers.errors import ConfigError, DeliveryRejected, StoreUnavailable
from transfers.ledger.store import mask_url
from transfers.logs import get_logger

__all__ = ["BATCH_ROWS", "DELIVERIES_TABLE", "LoadResult", "ReceivedDelivery", "ReceivedStore", "table_name"]

log = get_logger(__name__)

DELIVERIES_TABLE = "received_deliveries"
#: Columns every flow table has besides the agreement's fields.
META_COLUMNS = ("delivery_id", "logical_date", "received_at", "destroy_by")
#: Rows sent to the database per ``executemany``: memory stays bounded by one batch plus one part.
BATCH_ROWS = 1000
#: PostgreSQL's identifier limit (NAMEDATALEN - 1, in bytes); longer names are silently cut there.
MAX_NAME = 63
#: How long a load waits on SQLite for another load's write lock (a load may take minutes).
LOCK_TIMEOUT_SECONDS = 600
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


@dataclass(frozen=True)
class ReceivedDelivery:
    """One row of ``received_deliveries``: a delivery loaded, and where."""

    delivery_id: str
    agreement: str
    agreement_version: str
    flow: str
    logical_date: date
    sender: str
    manifest_sha256: str
    rows: int
    received_at: datetime  # tz-aware, UTC
    destroy_by: date
    table_name: str


def _deliveries_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        DELIVERIES_TABLE, metadata,
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("agreement", sa.Text, nullable=False),
        sa.Column("agreement_version", sa.Text, nullable=False),
        sa.Column("flow", sa.Text, nullable=False),
        sa.Column("logical_date", sa.Date, nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("manifest_sha256", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("destroy_by", sa.Date, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
    )


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


def _utc(moment: datetime) -> datetime:
    # SQLite hands DateTime(timezone=True) back naive; we only ever store UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
        self.engine = _engine(url, self.masked_url)
        self.deliveries_table = _deliveries_table(sa.MetaData())
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
                "received_at": _utc(received_at), "destroy_by": destroy_by}
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
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(DELIVERIES_TABLE):
                return None
            return self._find(conn, delivery_id)

    def deliveries(self, agreement: str | None = None, flow: str | None = None) -> list[ReceivedDelivery]:
        """Registered deliveries, oldest logical date first, optionally of one agreement and/or flow."""
        table = self.deliveries_table
        query = sa.select(table).order_by(table.c.logical_date, table.c.delivery_id)
        if agreement is not None:
            query = query.where(table.c.agreement == agreement)
        if flow is not None:
            query = query.where(table.c.flow == flow)
        with self.engine.connect() as conn:
            if not sa.inspect(conn).has_table(DELIVERIES_TABLE):
                return []
            return [_delivery(row._mapping) for row in conn.execute(query)]

    def _find(self, conn: Connection, delivery_id: str) -> ReceivedDelivery | None:
        table = self.deliveries_table
        row = conn.execute(sa.select(table).where(table.c.delivery_id == delivery_id)).first()
        return None if row is None else _delivery(row._mapping)

    # ------------------------------------------------------------------ transactions

    def _register(self) -> None:
        """Create ``received_deliveries`` once, under a lock so two first loads do not both create it."""
        if self._registered:
            return
        with self._writing(DELIVERIES_TABLE) as conn:
            if not sa.inspect(conn).has_table(DELIVERIES_TABLE):
                self.deliveries_table.create(conn)
        self._registered = True

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


def _delivery(row: sa.RowMapping) -> ReceivedDelivery:
    values = dict(row)
    values["received_at"] = _utc(values["received_at"])
    values["rows"] = int(values["rows"])
    return ReceivedDelivery(**values)


def _engine(url: str, masked: str) -> Engine:
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # a port that is not a number is a ValueError
        raise ConfigError(f"store URL {masked!r} is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).resolve().parent
            if not folder.is_dir():
                raise ConfigError(f"store {masked}: folder {folder} does not exist; create it first")
        engine = sa.create_engine(parsed, hide_parameters=True, connect_args={"timeout": LOCK_TIMEOUT_SECONDS})
        # pysqlite starts transactions late and cannot take the write lock up front;
        # switch its handling off and emit BEGIN (IMMEDIATE for loads) ourselves.
        sa.event.listen(engine, "connect", _sqlite_autocommit)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
            parsed = parsed.set(drivername="postgresql+psycopg2")  # what we ship; 2.1 means psycopg 3 by default
        try:
            # READ COMMITTED: after waiting for the lock, a load must see the delivery row the
            # previous holder committed, which a REPEATABLE READ snapshot taken earlier would not.
            return sa.create_engine(parsed, hide_parameters=True, isolation_level="READ COMMITTED",
                                    pool_pre_ping=True, connect_args={"connect_timeout": 10,
                                                                      "application_name": "isp-transfers-store"})
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigError(f"store URL {masked}: driver not available ({exc})") from None
    raise ConfigError(f"store URL {masked}: {backend!r} is not supported; use sqlite or postgresql")


def _sqlite_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("store_begin", "BEGIN"))
