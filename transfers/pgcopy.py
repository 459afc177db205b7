"""Extract from PostgreSQL with ``COPY ... TO STDOUT``, parsed by Arrow: no Python work per cell.

The row-by-row path (``transfers.sources``) turns each value the driver gives into
text in Python. Here the database writes the text itself, in CSV, and
``pyarrow.csv`` reads it while it streams. The text must be the same as the
row-by-row path's, byte for byte (a pseudonym is a hash of it), so the flow's
query is wrapped with a cast per column, chosen from the column's type:

==================  ==========================================  =======================
type                row-by-row path gave                         COPY renders it with
==================  ==========================================  =======================
boolean             ``True`` / ``False`` (Python's ``str``)      ``CASE``
date                ISO 8601                                     as is (DateStyle ISO)
timestamp           ISO 8601 with ``T``, to the second           ``date_trunc``, ``T``
timestamptz         the same with the session's ``+HH:MM``       ``to_char`` ``TZH:TZM``
float4, float8      ``12`` for 12.0, else Python's ``repr``      its own text, then Python
                                                                 for the few that differ
integers, numeric,  the database's own text                      as is
text types, uuid
==================  ==========================================  =======================

bytea is refused, as on the row-by-row path. Any other type (json, arrays,
intervals, time, enums...) keeps the row-by-row path for the whole extract,
where it is rendered as before: :func:`copy_batches` returns None. A test compares both paths on a table
of every type above.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]

from transfers.errors import SourceError, SourceUnavailable

#: type oid -> SQL rendering ``{0}`` (the quoted column) as the row-by-row path's text. ``to_char`` costs
#: a second per million values, so date and timestamp take the ISO text (DateStyle is set to ISO).
_CASTS = {
    16: "CASE WHEN {0} THEN 'True' WHEN NOT {0} THEN 'False' END",  # bool
    1114: "replace(date_trunc('second', {0})::text, ' ', 'T')",  # timestamp
    1184: "to_char({0}, 'YYYY-MM-DD\"T\"HH24:MI:SSTZH:TZM')",  # timestamptz: ISO text would give "+01", not "+01:00"
}
#: Types whose COPY text is already the row-by-row text: integers, text types, numeric, uuid, date (ISO).
_AS_IS = {20, 21, 23, 25, 18, 19, 1042, 1043, 1700, 2950, 1082}
_FLOATS = {700, 701}
_BYTEA = 17
#: Float text that Python would write otherwise: exponents, NaN/Infinity, -0, and more digits than a
#: double holds (a server whose extra_float_digits prints 17): the rest is identical, see test_pgcopy.
_FLOAT_ODD = r"[eIN]|^-0$|^.{16,}$"


@dataclass(frozen=True)
class CopyPlan:
    """How the wrapped query renders each column."""

    columns: list[str]
    select: str
    floats: list[str]


def plan(description: Any) -> CopyPlan | None:
    """The wrapped ``SELECT`` for a cursor description (name, type oid, ...); None if a type needs the row path."""
    columns = [str(col[0]) for col in description]
    if len(set(columns)) != len(columns):
        return None  # a subquery cannot name a column it has twice
    exprs, floats = [], []
    for name, oid in ((str(col[0]), col[1]) for col in description):
        quoted = '"' + name.replace('"', '""') + '"'
        if oid in _CASTS:
            exprs.append(_CASTS[oid].format(f"transfers_extract.{quoted}") + f" AS {quoted}")
        elif oid in _AS_IS or oid in _FLOATS:
            exprs.append(f"transfers_extract.{quoted}")
            if oid in _FLOATS:
                floats.append(name)
        elif oid == _BYTEA:
            raise SourceError(f"the source returned a binary column ({name!r}); select text columns only")
        else:
            return None
    return CopyPlan(columns, "SELECT " + ", ".join(exprs or ["1"]), floats)


def copy_batches(raw: Any, query: bytes, *, batch_rows: int, where: str, query_name: str) -> Iterator[pa.Table] | None:
    """Batches of ``batch_rows`` rows of the flow's query (parameters already bound), or None.

    None means the query keeps the row-by-row path: a column type COPY cannot render
    the same way, or a query that cannot be wrapped (that path then reports it as before).
    ``raw`` is the psycopg2 connection, in a transaction the caller ends.
    """
    import psycopg2  # type: ignore[import-untyped, unused-ignore]

    body = query.strip().rstrip(b";")
    cursor = raw.cursor()
    try:
        cursor.execute(b"SELECT * FROM (" + body + b"\n) AS transfers_extract LIMIT 0")
        description = cursor.description
    except psycopg2.Error:
        # The row-by-row path runs the query as written and names the error as it always did.
        with contextlib.suppress(psycopg2.Error):
            raw.rollback()  # a connection that dropped is that path's to report (retriable)
        return None
    finally:
        cursor.close()
    try:
        chosen = plan(description) if description else None
    except SourceError as exc:
        raise SourceError(f"{where}: {query_name}: {exc}") from None
    if chosen is None:
        return None
    sql = f"COPY ({chosen.select} FROM (".encode() + body + b"\n) AS transfers_extract) TO STDOUT WITH (FORMAT csv)"
    with raw.cursor() as cursor:
        # Output style only: the order the query's own date literals are read in stays the session's.
        cursor.execute("SET LOCAL DateStyle = 'ISO'")
        cursor.execute("SET LOCAL client_encoding = 'UTF8'")  # what Arrow reads; the driver decoded any other
    return _stream(raw, sql, chosen, batch_rows, where, query_name)


def _stream(raw: Any, sql: bytes, chosen: CopyPlan, batch_rows: int, where: str, query_name: str) -> Iterator[pa.Table]:
    import psycopg2  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.csv as pv  # type: ignore[import-untyped, unused-ignore]

    read_end, write_end = os.pipe()
    failed: list[BaseException] = []

    def produce() -> None:
        try:
            # psycopg2 writes one row per call: the buffer makes those calls cheap; the pipe bounds memory.
            with os.fdopen(write_end, "wb", buffering=1 << 20) as sink:
                raw.cursor().copy_expert(sql, sink)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading side, which raises it
            failed.append(exc)

    producer = threading.Thread(target=produce, name="transfers-pg-copy", daemon=True)
    producer.start()
    source = os.fdopen(read_end, "rb")
    try:
        first = source.peek(1)[:1]
        if not first:  # no rows at all (Arrow refuses an empty stream): the columns, as the row path gives
            producer.join()
            if failed:
                raise failed[0]
            yield pa.table({c: pa.array([], pa.string()) for c in chosen.columns})
            return
        reader = pv.open_csv(
            source,
            read_options=pv.ReadOptions(column_names=chosen.columns, block_size=4 << 20),
            parse_options=pv.ParseOptions(newlines_in_values=True),
            convert_options=pv.ConvertOptions(
                column_types={c: pa.string() for c in chosen.columns},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False,
            ),
        )
        pending: list[pa.RecordBatch] = []
        held = yielded = 0
        for record_batch in reader:
            pending.append(record_batch)
            held += record_batch.num_rows
            while held >= batch_rows:
                table = pa.Table.from_batches(pending, schema=reader.schema)
                yield _fix_floats(table.slice(0, batch_rows), chosen.floats)
                yielded += 1
                rest = table.slice(batch_rows)
                pending, held = rest.to_batches(), rest.num_rows
        producer.join()
        if failed:
            raise failed[0]  # before the last batch: a COPY cut short must not pass for a whole extract
        if held or not yielded:
            yield _fix_floats(pa.Table.from_batches(pending, schema=reader.schema), chosen.floats)
    except psycopg2.Error as exc:
        raise _classify(exc, raw, where, query_name) from None
    except pa.ArrowInvalid:
        producer.join()
        if failed and isinstance(failed[0], psycopg2.Error):
            raise _classify(failed[0], raw, where, query_name) from None
        raise SourceError(f"{where}: {query_name}: the database's COPY output was not readable CSV") from None
    finally:
        source.close()  # a reader that stops early: the producer's next write fails and COPY ends
        if producer.is_alive():
            raw.cancel()
            producer.join()


def _classify(exc: Any, raw: Any, where: str, query_name: str) -> SourceError | SourceUnavailable:
    if raw.closed:
        return SourceUnavailable(f"{where}: connection lost while running {query_name}")
    # The driver's message can quote SQL, never row values; keep only its first line.
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
    return SourceError(f"{where}: {query_name} failed: {first}")


def _fix_floats(table: pa.Table, floats: list[str]) -> pa.Table:
    for name in floats:
        index = table.schema.get_field_index(name)
        column = table.column(index).combine_chunks()
        odd = pc.fill_null(pc.match_substring_regex(column, _FLOAT_ODD), False)
        if not pc.any(odd).as_py():
            continue
        fixed = [_float_text(v) for v in pc.filter(column, odd).to_pylist()]
        table = table.set_column(index, name, pc.replace_with_mask(column, odd, pa.array(fixed, pa.string())))
    return table


def _float_text(text: str) -> str | None:
    # The row-by-row path's rule for a float (transfers.cells._text): NaN is missing, 12.0 is "12".
    value = float(text)
    if value != value:
        return None
    return str(int(value)) if value.is_integer() else str(value)
