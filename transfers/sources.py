"""Extract: read a flow's rows from the sender's system, batch by batch.

Every value leaves this module as a string (dates as ISO 8601) or None (the rule is
:mod:`transfers.cells`), so quality checks and pseudonyms see the same text whether the
source was a database, a CSV file or an S3 object, and a number never turns into ``12.0``.

A PostgreSQL source is read with ``COPY`` into Arrow (:mod:`transfers.pgcopy`),
which renders that same text in the database; other databases, and queries whose
column types COPY cannot render the same way, are read row by row here. A CSV file
is read by :mod:`transfers.csvsource`; an object in S3 (CSV or Parquet, at one
version) by :mod:`transfers.s3source`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]

from transfers.agreement import Source, check_relative_path
from transfers.agreement.source import fill_date_template
from transfers.cells import as_text
from transfers.connections import ConnInfo
from transfers.csvsource import csv_batches, csv_header
from transfers.errors import ConfigError, SourceError, SourceUnavailable


def sqlalchemy_url(conn: ConnInfo) -> str:
    """Build a SQLAlchemy URL from an Airflow-style connection."""
    from sqlalchemy.engine import URL

    if conn.extra.get("sqlalchemy_url"):
        return str(conn.extra["sqlalchemy_url"])
    kind = conn.conn_type.lower()
    if kind == "sqlite":
        if not conn.host:
            raise ConfigError(f"connection {conn.conn_id!r}: a sqlite connection needs host = the database file path")
        return f"sqlite:///{conn.host}"
    drivers = {"postgres": "postgresql+psycopg2", "postgresql": "postgresql+psycopg2"}
    if kind not in drivers:
        raise ConfigError(
            f"connection {conn.conn_id!r}: type {conn.conn_type!r} is not a supported SQL source "
            "(postgres, sqlite, or give extra.sqlalchemy_url)"
        )
    if str(conn.extra.get("iam", "")).lower() == "true":
        raise ConfigError(f"connection {conn.conn_id!r}: extra.iam (AWS IAM database authentication) is not "
                          "supported by transfers; give the role's password instead")
    return URL.create(
        drivers[kind],
        username=conn.login,
        password=conn.password,
        host=conn.host,
        port=conn.port,
        # The Postgres connection form's "Database" field is the connection's schema.
        database=conn.schema,
        # libpq settings in the extra (sslmode, sslrootcert...), as the Postgres provider passes them:
        # dropping sslmode=verify-full would connect without the TLS the connection asked for.
        query={k: str(v) for k, v in sorted(conn.extra.items()) if k in _LIBPQ_PARAMETERS},
    ).render_as_string(hide_password=False)


#: libpq connection parameters a Postgres connection's extra may set (PostgreSQL 15, "Parameter Key Words").
_LIBPQ_PARAMETERS = frozenset({
    "application_name", "channel_binding", "client_encoding", "connect_timeout", "gssencmode", "keepalives",
    "keepalives_count", "keepalives_idle", "keepalives_interval", "krbsrvname", "options", "passfile",
    "requirepeer", "service", "sslcert", "sslcompression", "sslcrl", "sslcrldir", "sslkey", "sslmode",
    "sslpassword", "sslrootcert", "sslsni", "ssl_min_protocol_version", "ssl_max_protocol_version",
    "target_session_attrs", "tcp_user_timeout",
})


#: What a database says when it refuses who we are, not whether it is up: retrying cannot help.
_REFUSED = ("password authentication failed", "authentication failed", "no pg_hba.conf entry",
            "does not exist", "is not permitted to log in", "permission denied for database",
            "access denied for user")


def connect_error(where: str, exc: Exception) -> SourceError | SourceUnavailable:
    """Classify a failed connection: credentials or database refused (terminal) or not reachable (retriable).

    The driver's first line names the role or database (never a password); it is kept so the
    data engineer sees which. A server that is down or restarting stays retriable.
    """
    first = (str(getattr(exc, "orig", exc)).strip().splitlines() or [type(exc).__name__])[0][:300]
    if any(marker in first.lower() for marker in _REFUSED):
        return SourceError(f"{where}: the database refused the connection: {first}; check the connection's "
                           "login, password and database name (not retried)")
    return SourceUnavailable(f"{where}: cannot connect: {first}")


def strip_sql_comments(query: str) -> str:
    """Remove ``--`` and ``/* */`` comments outside quoted strings.

    SQLAlchemy's ``text()`` finds ``:name`` binds inside comments too, while the
    database skips comments, so a comment that mentions ``:ds`` makes the two
    disagree on the number of parameters (SQLite refuses the query).

    sqlparse's lexer finds the comments (it knows quoting, doubled quotes and
    PostgreSQL's dollar quoting). Its ``format(strip_comments=True)`` is not used
    because it also rewrites the whitespace around them; here a ``--`` comment
    keeps its line break and a block comment becomes one space, so the tokens on
    either side never run together.
    """
    from sqlparse import tokens
    from sqlparse.lexer import tokenize

    out: list[str] = []
    for kind, value in tokenize(query):
        if kind in tokens.Comment.Single and not value.startswith("--"):
            # sqlparse also lexes MySQL's "# " as a comment; in PostgreSQL "#" is XOR: keep it, strip what follows.
            out.append(value[0] + strip_sql_comments(value[1:]))
        elif kind in tokens.Comment.Single:
            out.append(value[len(value.rstrip("\r\n")) :])
        elif kind in tokens.Comment.Multiline:
            out.append(" ")
        else:
            out.append(value)
    return "".join(out)


def extract_sql(source: Source, conn: ConnInfo, *, config_dir: Path, logical_date: dt.date) -> Iterator[pd.DataFrame]:
    """Run the flow's query with ``:ds`` bound to the logical date, in batches."""
    for batch in _sql_batches(source, conn, config_dir=config_dir, logical_date=logical_date):
        yield batch if isinstance(batch, pd.DataFrame) else _frame(batch)


def _frame(table: pa.Table) -> pd.DataFrame:
    if table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in table.column_names})
    return table.to_pandas().astype(object, copy=False)


def _sql_batches(
    source: Source, conn: ConnInfo, *, config_dir: Path, logical_date: dt.date
) -> Iterator[pd.DataFrame | pa.Table]:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    query_path, query = _query(source, config_dir)
    where = _where(conn)
    params = {"ds": logical_date.isoformat()} if ":ds" in query else {}
    with _connected(conn, where) as connection:
        copied = _copy(connection, query, params, source, where, query_path.name)
        if copied is not None:
            yield from copied
            return
        # Stream on the server side so a large extract is never all in memory.
        connection = connection.execution_options(stream_results=True, max_row_buffer=source.batch_rows)
        try:
            result = connection.execute(text(query), params)
            columns = [str(c) for c in result.keys()]
            yielded = False
            while rows := result.fetchmany(source.batch_rows):
                yielded = True
                # Object columns keep each value as the driver gave it: inferred int64 + None would turn
                # into float64 and lose integers beyond 2**53 (9007199254740993 became ...992).
                yield as_text(pd.DataFrame([tuple(row) for row in rows], columns=columns, dtype=object))
        except SQLAlchemyError as exc:
            if getattr(exc, "connection_invalidated", False):
                raise SourceUnavailable(f"{where}: connection lost while running {query_path.name}") from None
            # The driver's message can quote SQL, never row values; keep only its first line.
            first = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
            raise SourceError(f"{where}: {query_path.name} failed: {first}") from None
        if not yielded:
            yield pd.DataFrame({c: pd.Series(dtype=object) for c in columns})


def _copy(connection: Any, query: str, params: dict[str, str], source: Source, where: str,
          query_name: str) -> Iterator[pa.Table] | None:
    """The COPY path's batches for a PostgreSQL source (psycopg2), or None for the row-by-row path."""
    if (connection.dialect.name, connection.dialect.driver) != ("postgresql", "psycopg2"):
        return None
    from sqlalchemy import text

    from transfers.pgcopy import copy_batches

    # SQLAlchemy finds the binds exactly as the row-by-row path does; psycopg2 then quotes the values in.
    compiled = text(query).compile(dialect=connection.dialect)
    if not set(compiled.params) <= set(params):
        return None  # an unknown bind: the row-by-row path refuses it with SQLAlchemy's message
    raw = connection.connection.dbapi_connection
    with raw.cursor() as cursor:
        bound = cursor.mogrify(str(compiled), {k: params[k] for k in compiled.params})
    return copy_batches(raw, bound, batch_rows=source.batch_rows, where=where, query_name=query_name)


@contextmanager
def _connected(conn: ConnInfo, where: str) -> Iterator[Any]:
    """A connection to the source, a refused login classified once (terminal) apart from a server that is down."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import OperationalError

    engine = create_engine(sqlalchemy_url(conn))
    try:
        try:
            connection = engine.connect()
        except OperationalError as exc:
            raise connect_error(where, exc) from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def _query(source: Source, config_dir: Path) -> tuple[Path, str]:
    query_path = config_dir / check_relative_path(source.query or "", "source.query")
    try:
        return query_path, strip_sql_comments(query_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SourceError(f"{query_path}: cannot read the flow's query: {exc.strerror}") from None


def _where(conn: ConnInfo) -> str:
    return f"connection {conn.conn_id!r} ({conn.conn_type}" + (f" {conn.host}:{conn.port})" if conn.port else f" {conn.host})")


def _csv_path(source: Source, conn: ConnInfo, logical_date: dt.date) -> Path:
    base = conn.extra.get("path") or conn.host
    if not base:
        raise ConfigError(f"connection {conn.conn_id!r}: a file connection needs extra.path (the export directory)")
    relative = check_relative_path(fill_date_template(source.path or "", logical_date), "source.path")
    path = Path(base) / relative
    if not path.is_file():
        raise SourceError(f"{path}: the extract for {logical_date} is not there (connection {conn.conn_id!r})")
    return path


def source_columns(source: Source, conn: ConnInfo, *, config_dir: Path, logical_date: dt.date) -> list[str]:
    """The columns the extract would have, reading no row: the query wrapped with ``LIMIT 0``, or the CSV header.

    Raises the same errors as ``extract`` (a refused login is terminal, a server that is down retriable).
    """
    if source.kind == "csv":
        path = _csv_path(source, conn, logical_date)
        with path.open("rb") as fh:
            return csv_header(fh, str(path))
    if source.kind == "s3":
        from transfers.s3source import object_columns

        return object_columns(source, conn, logical_date=logical_date)
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    query_path, query = _query(source, config_dir)
    where = _where(conn)
    # A subquery keeps the flow's own query intact (its ORDER BY, its own LIMIT); ";" would end it early.
    probe = f"SELECT * FROM ({query.strip().rstrip(';')}\n) AS transfers_preflight LIMIT 0"  # noqa: S608 - the flow's own query
    with _connected(conn, where) as connection:
        try:
            result = connection.execute(text(probe), {"ds": logical_date.isoformat()} if ":ds" in query else {})
            return [str(c) for c in result.keys()]
        except SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
            raise SourceError(f"{where}: {query_path.name} failed (with LIMIT 0): {first}") from None


def extract_csv(source: Source, conn: ConnInfo, *, logical_date: dt.date) -> Iterator[pd.DataFrame]:
    """Read the flow's CSV file (``{ds}`` in its path is the logical date), in batches."""
    path = _csv_path(source, conn, logical_date)
    yield from csv_batches(lambda: path.open("rb"), str(path), source.batch_rows)


def extract(source: Source, conn: ConnInfo, *, config_dir: Path, logical_date: dt.date) -> Iterator[pd.DataFrame]:
    """Batches of text columns as DataFrames (object columns of str or None)."""
    if source.kind == "sql":
        return extract_sql(source, conn, config_dir=config_dir, logical_date=logical_date)
    if source.kind == "s3":
        from transfers.s3source import extract_s3

        return extract_s3(source, conn, logical_date=logical_date)
    return extract_csv(source, conn, logical_date=logical_date)


def extract_batches(
    source: Source, conn: ConnInfo, *, config_dir: Path, logical_date: dt.date
) -> Iterator[pd.DataFrame | pa.Table]:
    """The extract step's entry point: the same batches, as Arrow tables where the source gives them so.

    For a writer that takes either (staging): a COPY extract is not turned into pandas and back.
    """
    if source.kind == "sql":
        return _sql_batches(source, conn, config_dir=config_dir, logical_date=logical_date)
    if source.kind == "s3":
        from transfers.s3source import extract_s3

        return extract_s3(source, conn, logical_date=logical_date)
    return extract_csv(source, conn, logical_date=logical_date)
