"""The recipient store's register, ``received_deliveries``: one row per delivery loaded, and its destruction.

Shared by loading and destruction (``transfers.receive.store``): the table, the row type, the
columns added since the first stores were made, and which rows of a delivery a destruction deletes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from transfers.logs import get_logger

__all__ = ["DELIVERIES_TABLE", "ReceivedDelivery", "add_later_columns", "count_rows", "deliveries_table",
           "delivery_of", "doomed_rows", "utc"]

log = get_logger(__name__)

DELIVERIES_TABLE = "received_deliveries"


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
    destroyed_at: datetime | None = None  # when its last row was destroyed (tz-aware, UTC)
    rows_destroyed: int = 0  # rows destroyed so far: all of them once destroyed_at is set

    def is_due(self, now: datetime) -> bool:
        """Not wholly destroyed, and ``destroy_by`` is ``now``'s UTC date or earlier (destroyed *by* that date)."""
        return self.destroyed_at is None and self.destroy_by <= now.astimezone(UTC).date()


#: Columns the register gained after stores were first made: added to an older store when opened.
_LATER_COLUMNS = (("destroyed_at", sa.DateTime(timezone=True)), ("rows_destroyed", sa.BigInteger()))


def deliveries_table(metadata: sa.MetaData) -> sa.Table:
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
        *(sa.Column(name, kind, nullable=True) for name, kind in _LATER_COLUMNS),
    )


def utc(moment: datetime) -> datetime:
    # SQLite hands DateTime(timezone=True) back naive; we only ever store UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def add_later_columns(conn: Connection) -> None:
    """Add to an older register the columns added since (nullable, so existing rows read as not destroyed)."""
    have = {column["name"] for column in sa.inspect(conn).get_columns(DELIVERIES_TABLE)}
    for name, kind in _LATER_COLUMNS:
        if name not in have:
            conn.execute(sa.text(f"ALTER TABLE {DELIVERIES_TABLE} ADD COLUMN {name} "
                                 f"{kind.compile(dialect=conn.dialect)}"))
            log.info("store register upgraded", table=DELIVERIES_TABLE, column=name)


def count_rows(conn: Connection, table: sa.TableClause, where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(where)).scalar_one())


def doomed_rows(found: ReceivedDelivery, subject_column: str | None,
                keep: Collection[str]) -> tuple[sa.TableClause, sa.ColumnElement[bool]]:
    """The delivery's table and which of its rows a destruction deletes: all of the delivery's, but
    those whose ``subject_column`` holds a value in ``keep`` (subjects under a legal hold)."""
    columns: list[sa.ColumnClause[Any]] = [sa.column("delivery_id")]
    if subject_column:
        columns.append(sa.column(subject_column))
    flow_table = sa.table(found.table_name, *columns)
    doomed: sa.ColumnElement[bool] = flow_table.c.delivery_id == found.delivery_id
    if keep:
        if subject_column is None:
            raise ValueError("keep needs the subject column")
        subject = flow_table.c[subject_column]
        # NOT IN is unknown for NULL: a row without a subject is no held subject's, so it goes.
        doomed = doomed & sa.or_(subject.is_(None), subject.not_in(list(keep)))
    return flow_table, doomed


def delivery_of(row: sa.RowMapping) -> ReceivedDelivery:
    values = dict(row)
    values["received_at"] = utc(values["received_at"])
    values["rows"] = int(values["rows"])
    values["destroyed_at"] = utc(values["destroyed_at"]) if values.get("destroyed_at") else None
    values["rows_destroyed"] = int(values.get("rows_destroyed") or 0)
    return ReceivedDelivery(**values)
