"""The recipient store's database engine: SQLite or PostgreSQL, parameters hidden from every error.

Engines are made with ``hide_parameters``: a driver error never carries record values into a log
or a traceback. On SQLite the driver's own transaction handling is switched off so a load can take
the write lock up front (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from transfers.errors import ConfigError

__all__ = ["LOCK_TIMEOUT_SECONDS", "store_engine"]

#: How long a load waits on SQLite for another load's write lock (a load may take minutes).
LOCK_TIMEOUT_SECONDS = 600


def store_engine(url: str, masked: str) -> Engine:
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
