"""A notice acted on in the recipient's store: one subject's rows deleted, or marked as corrected.

A withdrawal deletes the rows whose subject column holds one of the notice's pseudonyms from every
table given (all the received tables of the notice's agreement), in one transaction: the rows are
counted per delivery first, deleted, counted gone before the commit (any left rolls everything
back), and each delivery's ``rows_destroyed`` in ``received_deliveries`` grows by its share, so the
register still says how many of its rows are gone. A correction deletes nothing: it adds one mark
per (table, pseudonym) that has rows to ``received_corrections`` (table, subject, fields,
reference, noticed_at), for whoever reads the table to see which rows to treat as inaccurate.

Either way the outcome is kept in ``received_notices`` (reference, notice, rows, tables,
applied_at) in the same transaction, so a notice is applied once: a second call with the same
reference (a retry after a crash before the ledger recorded it) returns what the first did.

Identifiers are quoted by SQLAlchemy; values are bound parameters, and the engine hides them from
every error (``transfers.receive.engine``). Works on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from transfers.errors import DestructionFailed, StoreUnavailable
from transfers.logs import get_logger
from transfers.receive.register import DELIVERIES_TABLE, count_rows, deliveries_table, utc
from transfers.receive.store import ReceivedStore, _lock_key

__all__ = ["CORRECTIONS_TABLE", "NOTICES_TABLE", "Applied", "SubjectTable", "apply_subject_notice",
           "corrections_table", "notices_table"]

log = get_logger(__name__)

CORRECTIONS_TABLE = "received_corrections"
NOTICES_TABLE = "received_notices"


@dataclass(frozen=True)
class SubjectTable:
    """A received table and the column that names the subject in it (by pseudonym)."""

    table: str
    column: str


@dataclass(frozen=True)
class Applied:
    """What a notice did in the store: ``rows`` deleted (withdrawal) or marked (correction), in ``tables``
    (every table searched); ``already`` when an earlier call had applied it (nothing was done now)."""

    reference: str
    notice: str
    rows: int
    tables: tuple[str, ...]
    applied_at: datetime
    already: bool = False


def notices_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        NOTICES_TABLE, metadata,
        sa.Column("reference", sa.Text, primary_key=True),
        sa.Column("notice", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("tables", sa.Text, nullable=False),  # a JSON list of table names
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
    )


def corrections_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        CORRECTIONS_TABLE, metadata,
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("reference", sa.Text, primary_key=True),
        sa.Column("fields", sa.Text, nullable=False),  # a JSON list of the field names rectified
        sa.Column("noticed_at", sa.DateTime(timezone=True), nullable=False),
    )


def apply_subject_notice(store: ReceivedStore, *, reference: str, notice: str, tables: Sequence[SubjectTable],
                         pseudonyms: Collection[str], fields: Sequence[str] = (), at: datetime) -> Applied:
    """Apply one notice to the store, once per ``reference``.

    ``notice`` is ``withdrawal`` (delete the rows) or ``correction`` (mark them with ``fields``). A table
    that does not exist, or has no such column, is skipped (nothing of this subject can be in it).

    Raises:
        ValueError: ``notice`` is neither kind, or ``at`` is naive.
        DestructionFailed: Rows of the subject were still there after the DELETE (rolled back).
        StoreUnavailable: The database could not be reached; nothing was done.
    """
    if notice not in ("withdrawal", "correction"):
        raise ValueError(f"notice {notice!r} is neither withdrawal nor correction")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    metadata = sa.MetaData()
    done, marks = notices_table(metadata), corrections_table(metadata)
    subjects = sorted(set(pseudonyms))
    names = tuple(sorted({t.table for t in tables}))
    try:
        with _writing(store, (NOTICES_TABLE, CORRECTIONS_TABLE, DELIVERIES_TABLE, *names)) as conn:
            inspector = sa.inspect(conn)
            for table in (done, marks):
                if not inspector.has_table(table.name):
                    table.create(conn)
            found = conn.execute(sa.select(done).where(done.c.reference == reference)).first()
            if found is not None:
                return Applied(reference, str(found.notice), int(found.rows), tuple(json.loads(found.tables)),
                               utc(found.applied_at), already=True)
            rows = 0
            for item in sorted(set(tables), key=lambda t: (t.table, t.column)):
                if not subjects or not _has_column(inspector, item):
                    continue
                if notice == "withdrawal":
                    rows += _delete(conn, item, subjects, store.masked_url)
                else:
                    rows += _mark(conn, marks, item, subjects, reference, list(fields), at)
            conn.execute(done.insert().values(reference=reference, notice=notice, rows=rows,
                                              tables=json.dumps(list(names)), applied_at=utc(at)))
    except sa.exc.OperationalError as exc:
        raise StoreUnavailable(f"store {store.masked_url}: {type(exc.orig).__name__ if exc.orig else 'error'} "
                               f"while applying {notice} notice {reference}; nothing was done") from None
    log.info("notice applied to the store", reference=reference, notice=notice, rows=rows, tables=len(names))
    return Applied(reference, notice, rows, names, utc(at))


def applied(store: ReceivedStore, reference: str) -> Applied | None:
    """What notice ``reference`` did in the store, or None when it was never applied."""
    done = notices_table(sa.MetaData())
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(NOTICES_TABLE):
            return None
        found = conn.execute(sa.select(done).where(done.c.reference == reference)).first()
    if found is None:
        return None
    return Applied(reference, str(found.notice), int(found.rows), tuple(json.loads(found.tables)),
                   utc(found.applied_at), already=True)


def _has_column(inspector: sa.Inspector, item: SubjectTable) -> bool:
    if not inspector.has_table(item.table):
        return False
    return item.column in {column["name"] for column in inspector.get_columns(item.table)}


def _delete(conn: Connection, item: SubjectTable, subjects: list[str], masked: str) -> int:
    table = sa.table(item.table, sa.column("delivery_id"), sa.column(item.column))
    match = table.c[item.column].in_(subjects)
    per_delivery = {str(d): int(n) for d, n in conn.execute(
        sa.select(table.c.delivery_id, sa.func.count()).select_from(table).where(match)
        .group_by(table.c.delivery_id))}
    if not per_delivery:
        return 0
    deleted = conn.execute(sa.delete(table).where(match)).rowcount
    if count_rows(conn, table, match):
        raise DestructionFailed(f"store {masked}: rows of the subject are still in {item.table} after the "
                                f"DELETE; rolled back, nothing was deleted")
    register = deliveries_table(sa.MetaData())
    if sa.inspect(conn).has_table(DELIVERIES_TABLE):
        for delivery, count in per_delivery.items():
            conn.execute(register.update().where(register.c.delivery_id == delivery).values(
                rows_destroyed=sa.func.coalesce(register.c.rows_destroyed, 0) + count))
    return int(deleted)


def _mark(conn: Connection, marks: sa.Table, item: SubjectTable, subjects: list[str], reference: str,
          fields: list[str], at: datetime) -> int:
    table = sa.table(item.table, sa.column(item.column))
    total = 0
    for subject in subjects:
        count = count_rows(conn, table, table.c[item.column] == subject)
        if count:
            conn.execute(marks.insert().values(table_name=item.table, subject=subject, reference=reference,
                                               fields=json.dumps(fields), noticed_at=utc(at)))
            total += count
    return total


@contextlib.contextmanager
def _writing(store: ReceivedStore, names: Sequence[str]) -> Iterator[Connection]:
    """One transaction holding the write locks of every table in ``names`` (as the store's loads take them)."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn = conn.execution_options(store_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if store.dialect == "postgresql":
                # Sorted, so two notices locking overlapping tables cannot deadlock.
                for key in sorted({_lock_key(name) for name in names}):
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))
            yield conn
