"""Where the ledger lives: the engine per dialect, the table, the write lock, reads in pages.

Appends are serialised across processes (``BEGIN IMMEDIATE`` on SQLite, a
transaction-level advisory lock on PostgreSQL), so ``seq`` is gapless even when
several Airflow tasks record at once. Driver errors become ``LedgerUnavailable``
naming the ledger without its password. Nothing here knows the hash chain's
rules: it stores and returns ``Entry`` values.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from transfers.errors import ConfigError, LedgerUnavailable
from transfers.ledger.chain import Entry, canonical_json, utc
from transfers.logs import get_logger

log = get_logger(__name__)

DEFAULT_TABLE = "ledger_entries"
#: How long an append waits for another process's append before giving up (retriable).
LOCK_TIMEOUT_SECONDS = 30
_PAGE = 1000
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SECRET_QUERY_KEYS = re.compile(r"pass|secret|token|key", re.IGNORECASE)


def mask_url(url: str) -> str:
    """``url`` fit for an error message: password (and secret-looking query values) replaced."""
    try:
        parsed = make_url(url)
    except Exception:  # unparsable: fall back to a textual mask
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    query = {k: ("***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


class Store:
    """One ledger table in one database: engine, locks, error translation and row reads.

    Raises:
        ConfigError: The URL is malformed, the dialect unsupported, or a name not plain SQL.
    """

    def __init__(self, url: str, *, schema: str | None, table: str) -> None:
        self.masked_url = mask_url(url)
        for label, name in (("table", table), ("schema", schema)):
            if name is not None and not _NAME.match(name):
                raise ConfigError(f"ledger {self.masked_url}: {label} {name!r} is not a plain lower-case SQL name")
        self.engine = database_engine(url, schema, masked_url=self.masked_url)
        self._password = make_url(url).password
        self.schema, self.name = schema, table
        self.qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
        self.display = f"{schema}.{table}" if schema else table
        # Per table, so ledgers in different schemas (tests) do not wait for each other.
        digest = hashlib.sha256(f"isp-transfers-ledger:{schema or ''}.{table}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self.table = define_table(table, schema)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def create(self, conn: Connection) -> bool:
        """Create the table if missing; True when it was created (then guard it)."""
        if self.schema is not None:
            found = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": self.schema}).first()
            if found is None:
                raise ConfigError(f"ledger {self.masked_url}: schema {self.schema!r} does not exist; create it first")
        if sa.inspect(conn).has_table(self.name, schema=self.schema):
            return False
        self.table.create(conn)
        log.info("ledger created", ledger=self.masked_url, table=self.display)
        return True

    @contextlib.contextmanager
    def writing(self) -> Iterator[Connection]:
        """A transaction holding the ledger's write lock, so appends run one at a time."""
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(ledger_begin="BEGIN IMMEDIATE")
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
                yield conn

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into ours, naming the ledger without its password."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0:1]
            text = reason[0] if reason else type(exc).__name__
            if self._password:
                text = text.replace(self._password, "***")
            raise LedgerUnavailable(f"cannot {action} ledger {self.masked_url}: {text}; "
                                    f"check the database is up and reachable, then retry") from None

    def insert(self, conn: Connection, entry: Entry) -> None:
        conn.execute(self.table.insert().values(
            seq=entry.seq, at=entry.at, kind=entry.kind, agreement=entry.agreement, flow=entry.flow,
            logical_date=entry.logical_date, recipient=entry.recipient, dedupe_key=entry.dedupe_key,
            payload=entry.payload, prev_hash=entry.prev_hash, hash=entry.hash,
        ))

    def last(self, conn: Connection) -> Entry | None:
        row = conn.execute(sa.select(self.table).order_by(self.table.c.seq.desc()).limit(1)).first()
        return _entry(row) if row else None

    def one(self, conn: Connection, condition: sa.ColumnElement[bool]) -> Entry | None:
        row = conn.execute(sa.select(self.table).where(condition)).first()
        return _entry(row) if row else None

    def count(self) -> int:
        with self.errors("read"), self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one())

    def distinct(self, column: str) -> list[str]:
        """The values ``column`` holds in any entry, sorted (NULL left out)."""
        c = self.table.c[column]
        with self.errors("read"), self.engine.connect() as conn:
            return sorted(v for (v,) in conn.execute(sa.select(c).distinct()) if v is not None)

    def conditions(self, kinds: tuple[str, ...] | None, agreement: str | None, flow: str | None,
                   since: datetime | None, until: datetime | None) -> list[sa.ColumnElement[bool]]:
        t = self.table
        conditions = [column == value for column, value in ((t.c.agreement, agreement), (t.c.flow, flow))
                      if value is not None]
        if kinds is not None:
            conditions.append(t.c.kind == kinds[0] if len(kinds) == 1 else t.c.kind.in_(kinds))
        if since is not None:
            conditions.append(t.c.at >= utc(since, "since"))
        if until is not None:
            conditions.append(t.c.at < utc(until, "until"))
        return conditions

    def pages(self, conditions: list[sa.ColumnElement[bool]]) -> Iterator[Entry]:
        """Entries in seq order, a page per short transaction: never all in memory, never blocking appends."""
        t, after = self.table, 0
        while True:
            with self.errors("read"), self.engine.connect() as conn:
                rows = conn.execute(sa.select(t).where(t.c.seq > after, *conditions)
                                    .order_by(t.c.seq).limit(_PAGE)).all()
            yield from (_entry(r) for r in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    def latest(self, limit: int, conditions: list[sa.ColumnElement[bool]]) -> list[Entry]:
        """The last ``limit`` matching entries, in seq order, read with one bounded query."""
        t = self.table
        with self.errors("read"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(*conditions).order_by(t.c.seq.desc()).limit(limit)).all()
        return [_entry(r) for r in reversed(rows)]


def database_engine(url: str, schema: str | None = None, *, masked_url: str | None = None) -> Engine:
    """An engine for the ledger's database (also used by the run locks beside it)."""
    masked = masked_url or mask_url(url)
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"ledger URL {masked!r} is not a valid SQLAlchemy URL ({exc})") from None
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        if schema is not None:
            raise ConfigError(f"ledger {masked}: schema= is only for PostgreSQL")
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).resolve().parent
            if not folder.is_dir():
                raise ConfigError(f"ledger {masked}: folder {folder} does not exist; create it first")
        engine = sa.create_engine(parsed, json_serializer=canonical_json,
                                  connect_args={"timeout": LOCK_TIMEOUT_SECONDS})
        # pysqlite's own transaction handling starts transactions late and cannot take
        # the write lock up front; switch it off and emit BEGIN ourselves.
        sa.event.listen(engine, "connect", _sqlite_autocommit)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if dialect == "postgresql":
        if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
            # SQLAlchemy 2.1 means psycopg 3 by a bare postgresql://; psycopg2 is what we ship.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        try:
            # READ COMMITTED matters: each statement after the lock must see the
            # previous holder's row, which a REPEATABLE READ snapshot would not.
            return sa.create_engine(parsed, json_serializer=canonical_json, isolation_level="READ COMMITTED",
                                    pool_pre_ping=True, connect_args={"connect_timeout": 10,
                                                                      "application_name": "isp-transfers-ledger"})
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigError(f"ledger URL {masked}: driver not available ({exc})") from None
    raise ConfigError(f"ledger URL {masked}: {dialect!r} is not supported; use sqlite or postgresql")


def define_table(name: str, schema: str | None) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        # INTEGER (not BIGINT) on SQLite so seq is the rowid: no hidden second key.
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("agreement", sa.String(200), nullable=False),
        sa.Column("flow", sa.String(200)),
        sa.Column("logical_date", sa.Date()),
        sa.Column("recipient", sa.String(200)),
        sa.Column("dedupe_key", sa.String(1000)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("dedupe_key", name=f"uq_{name}_dedupe_key"),
        sa.Index(f"ix_{name}_kind_flow", "kind", "flow", "seq"),
        sa.Index(f"ix_{name}_at", "at"),
        schema=schema,
    )


def _sqlite_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock before reading the head, so two processes
    # cannot both read seq N and both write N+1; the busy timeout makes the second wait.
    conn.exec_driver_sql(conn.get_execution_options().get("ledger_begin", "BEGIN"))


def _entry(row: sa.Row[Any]) -> Entry:
    at = row.at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
    return Entry(row.seq, at, row.kind, row.agreement, row.flow, row.logical_date, row.recipient, row.dedupe_key,
                 payload, row.prev_hash, row.hash)
