"""The tables of the subject register and the set-based writes into them.

* ``subject_headers``: one row per event and set: what happened (``prepared``, ``disclosed``,
  ``excluded``, ``notice``, ``withdrawn``), to whom, under which reference. A disclosure's header
  points (``source``) at the prepare step's header whose subjects its outbox holds, so the
  subjects are written once per prepare attempt and never copied per recipient.
* ``subject_pseudonyms``: one row per (lookup token, pseudonym) ever recorded, with an integer id.
* ``subject_members``: which subject ids each header holds, one row per block of ids
  (see :mod:`transfers.privacy.members`).

Writes go through a temporary table filled in one statement (SQLite ``executemany``,
PostgreSQL ``COPY``), so a batch costs a few statements, not one per subject.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from transfers.privacy import members

HEADERS, SUBJECTS, MEMBERS = "subject_headers", "subject_pseudonyms", "subject_members"
LEGACY = "subject_events"
# What a header says, besides when; every row of one event and set shares these.
HEADER_FIELDS = ("event", "agreement", "flow", "logical_date", "recipient", "key_id", "detail", "ref")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def define(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table, sa.Table]:
    headers = sa.Table(
        HEADERS, metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("agreement", sa.String(200), nullable=False),
        sa.Column("flow", sa.String(200)),
        sa.Column("logical_date", sa.Date()),
        sa.Column("recipient", sa.String(200)),
        sa.Column("key_id", sa.String(100)),
        sa.Column("detail", sa.String(200)),
        sa.Column("ref", sa.String(500), nullable=False),
        # The header whose subjects this one names (a disclosure: its prepare step's); None: its own.
        sa.Column("source", _ID),
        # SHA-256 of every field above but ``at``: a retry finds the header it made instead of a second one.
        sa.Column("identity", sa.String(64), nullable=False, unique=True),
        sa.Index(f"ix_{HEADERS}_ref", "ref", "event"),
        sa.Index(f"ix_{HEADERS}_source", "source"),
        sa.Index(f"ix_{HEADERS}_flow", "flow", "logical_date", "event"),
    )
    subjects = sa.Table(
        SUBJECTS, metadata,
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("lookup", sa.LargeBinary(members.TOKEN_BYTES), nullable=False),
        sa.Column("pseudonym", sa.LargeBinary(), nullable=False),  # b"": none recorded
        sa.Index(f"ix_{SUBJECTS}_lookup", "lookup"),
    )
    member_rows = sa.Table(
        MEMBERS, metadata,
        sa.Column("header_id", _ID, primary_key=True),
        sa.Column("block", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Index(f"ix_{MEMBERS}_block", "block"),
        sqlite_with_rowid=False,
    )
    return headers, subjects, member_rows


def identity(fields: dict[str, Any], source: int | None, occasion: str | None = None) -> str:
    values = [fields.get(name) for name in HEADER_FIELDS]
    extra = [source] if occasion is None else [source, occasion]
    text = json.dumps([v.isoformat() if isinstance(v, date) else v for v in values] + extra)
    return hashlib.sha256(text.encode()).hexdigest()


def insert_ignoring(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert(table).on_conflict_do_nothing()
    return sa.insert(table).prefix_with("OR IGNORE")


def header(conn: sa.Connection, headers: sa.Table, fields: dict[str, Any], *, at: datetime,
           source: int | None = None, occasion: str | None = None) -> int:
    """The id of the header with these fields, made if there is none yet.

    ``occasion`` keeps apart headers whose fields are the same but whose time matters
    (each withdrawal of an agreement is its own event, at its own moment).
    """
    key = identity(fields, source, occasion)
    found = conn.execute(sa.select(headers.c.id).where(headers.c.identity == key)).scalar()
    if found is None:
        row = {name: fields.get(name) for name in HEADER_FIELDS}
        conn.execute(insert_ignoring(conn, headers), [{**row, "at": at, "source": source, "identity": key}])
        found = conn.execute(sa.select(headers.c.id).where(headers.c.identity == key)).scalar_one()
    return int(found)


def subject_ids(conn: sa.Connection, tokens: list[bytes], pseudonyms: list[bytes]) -> np.ndarray:
    """The ids of these (lookup token, stored pseudonym) pairs, adding the ones not seen before.

    For a few subjects at a time (a notice, a withdrawal); a prepare step's thousands go through
    :mod:`transfers.privacy.staged`, which adds the new ones in one sorted insert at the end.
    """
    if not tokens:
        return np.zeros(0, dtype=np.int64)
    _load_batch(conn, tokens, pseudonyms)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "INSERT INTO subject_pseudonyms (lookup, pseudonym) SELECT DISTINCT b.lookup, b.pseudonym "
            "FROM subject_batch b WHERE NOT EXISTS (SELECT 1 FROM subject_pseudonyms s "
            "WHERE s.lookup = b.lookup AND s.pseudonym = b.pseudonym)")
    else:
        # The INSERT ... SELECT holds SQLite's one write lock while it checks, so no subject is
        # added twice; the pairs go in token order, so a new cohort's ids follow that order too.
        conn.exec_driver_sql(
            "INSERT INTO subject_pseudonyms (lookup, pseudonym) SELECT b.lookup, b.pseudonym "
            "FROM subject_batch b WHERE NOT EXISTS (SELECT 1 FROM subject_pseudonyms s "
            "WHERE s.lookup = b.lookup AND s.pseudonym = b.pseudonym) ORDER BY b.rowid")
    return known_ids(conn)


def stage(conn: sa.Connection, header_id: int, tokens: list[bytes], pseudonyms: list[bytes]) -> tuple[np.ndarray, int]:
    """The ids of the pairs already in the register, and how many others were put in ``subject_staged``
    for :func:`add_staged` (this only reads the register)."""
    if not tokens:
        return np.zeros(0, dtype=np.int64), 0
    _load_batch(conn, tokens, pseudonyms)
    order = "" if conn.dialect.name == "postgresql" else " ORDER BY b.rowid"
    staged = conn.exec_driver_sql(
        f"INSERT INTO subject_staged (header_id, lookup, pseudonym) SELECT {int(header_id)}, b.lookup, "  # noqa: S608
        "b.pseudonym FROM subject_batch b WHERE NOT EXISTS (SELECT 1 FROM subject_pseudonyms s "
        f"WHERE s.lookup = b.lookup AND s.pseudonym = b.pseudonym){order}")
    return known_ids(conn), max(int(staged.rowcount or 0), 0)


def known_ids(conn: sa.Connection) -> np.ndarray:
    """The register's ids of the pairs in ``subject_batch`` that it holds."""
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            # min(): two transactions adding the same subject at once leave two rows; every set names the first.
            cursor.execute("SELECT min(s.id) FROM subject_batch b JOIN subject_pseudonyms s ON s.lookup = b.lookup "
                           "AND s.pseudonym = b.pseudonym GROUP BY b.lookup, b.pseudonym")
            return np.fromiter((row[0] for row in cursor.fetchall()), dtype=np.int64)
        # One row of text, not a Python tuple per subject.
        cursor.execute("SELECT group_concat(s.id) FROM subject_batch b JOIN subject_pseudonyms s "
                       "ON s.lookup = b.lookup AND s.pseudonym = b.pseudonym")
        row = cursor.fetchone()
        listed = row[0] if row else None
    finally:
        cursor.close()
    return np.fromstring(listed, dtype=np.int64, sep=",") if listed else np.zeros(0, dtype=np.int64)


def make_staged(conn: sa.Connection) -> None:
    """The connection's temporary table of pairs waiting for :func:`add_staged` (no index: only appended to)."""
    blob = "bytea" if conn.dialect.name == "postgresql" else "BLOB"
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS subject_staged (header_id bigint NOT NULL, "
                         f"lookup {blob} NOT NULL, pseudonym {blob} NOT NULL)")


def add_staged(conn: sa.Connection) -> int:
    """Add the staged pairs the register lacks, in one insert in token order; return how many.

    Sorted, the inserts walk the lookup index once from end to end, so a night of new subjects
    writes each index page about once instead of once per batch that touches it.
    """
    # GROUP BY, not DISTINCT: SQLite groups by sorting, and the sorted groups need no second sort.
    result = conn.exec_driver_sql(
        "INSERT INTO subject_pseudonyms (lookup, pseudonym) SELECT p.lookup, p.pseudonym FROM subject_staged p "
        "GROUP BY p.lookup, p.pseudonym HAVING NOT EXISTS (SELECT 1 FROM subject_pseudonyms s "
        "WHERE s.lookup = p.lookup AND s.pseudonym = p.pseudonym) ORDER BY p.lookup, p.pseudonym")
    return max(int(result.rowcount or 0), 0)


def staged_ids(conn: sa.Connection, header_id: int, chunk: int = 200_000) -> Iterator[np.ndarray]:
    """The register's ids of one header's staged pairs, in chunks (each pair once)."""
    distinct = (f"SELECT lookup, pseudonym FROM subject_staged WHERE header_id = {int(header_id)} "  # noqa: S608
                "GROUP BY lookup, pseudonym")
    if conn.dialect.name == "postgresql":
        query = (f"SELECT min(s.id) FROM ({distinct}) p JOIN subject_pseudonyms s ON s.lookup = p.lookup "  # noqa: S608
                 "AND s.pseudonym = p.pseudonym GROUP BY p.lookup, p.pseudonym")
        cursor = conn.connection.cursor(name="subject_staged_ids")  # server-side: not all ids in memory at once
    else:
        # Grouped by sorting, the pairs come in token order, so the lookups walk the index in order.
        query = (f"SELECT s.id FROM ({distinct}) p JOIN subject_pseudonyms s "  # noqa: S608
                 "ON s.lookup = p.lookup AND s.pseudonym = p.pseudonym")
        cursor = conn.connection.cursor()
    try:
        cursor.execute(query)
        while rows := cursor.fetchmany(chunk):
            yield np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    finally:
        cursor.close()


def _load_batch(conn: sa.Connection, tokens: list[bytes], pseudonyms: list[bytes]) -> None:
    """Put the pairs in the temporary table ``subject_batch`` (SQLite: distinct, in token order)."""
    cursor = conn.connection.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS subject_batch (lookup bytea NOT NULL, "
                           "pseudonym bytea NOT NULL) ON COMMIT DELETE ROWS")
            cursor.execute("TRUNCATE subject_batch")
            text = "".join(f"\\\\x{t.hex()}\t\\\\x{p.hex()}\n" for t, p in zip(tokens, pseudonyms, strict=True))
            cursor.copy_expert("COPY subject_batch (lookup, pseudonym) FROM STDIN", io.StringIO(text))
            cursor.execute("ANALYZE subject_batch")  # a temporary table has no statistics otherwise
            return
        # SQLite: the plain DB-API cursor, as SQLAlchemy's per-row parameter handling costs more than
        # the insert. In token order, the probes of the register's lookup index walk it from one end
        # to the other instead of jumping to a random page per subject.
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS subject_batch (lookup BLOB NOT NULL, pseudonym BLOB NOT NULL)")
        cursor.execute("DELETE FROM subject_batch")
        blobs = _distinct_sorted(tokens, pseudonyms)
        if blobs is None:  # tokens or pseudonyms of mixed widths: rare, row by row
            cursor.executemany("INSERT INTO subject_batch VALUES (?, ?)",
                               sorted(set(zip(tokens, pseudonyms, strict=True))))
            return
        count, token_blob, pseudonym_blob, width = blobs
        # Blobs cut up by SQLite: a third of the cost of binding two parameters per row. substr() of
        # an empty blob is NULL, so no pseudonym is written as the empty blob itself.
        params: tuple[Any, ...] = (count, token_blob, members.TOKEN_BYTES, members.TOKEN_BYTES)
        pseudonym = "x''"
        if width:
            pseudonym = "substr(?, n * ? + 1, ?)"
            params += (pseudonym_blob, width, width)
        fill = ("WITH RECURSIVE i(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM i WHERE n + 1 < ?) "  # noqa: S608
                f"INSERT INTO subject_batch SELECT substr(?, n * ? + 1, ?), {pseudonym} FROM i")  # constants only
        cursor.execute(fill, params)
    finally:
        cursor.close()


def _distinct_sorted(tokens: list[bytes], pseudonyms: list[bytes]) -> tuple[int, bytes, bytes, int] | None:
    """(count, tokens, pseudonyms, pseudonym width): the distinct pairs in byte order (SQLite's blob
    order) as two blobs, or None unless every token is a 16-byte token and every pseudonym one width.

    numpy on the pairs as fixed-width byte strings: a Python sort and set of tuples cost ten times more.
    """
    n, size = len(tokens), members.TOKEN_BYTES
    widths = set(map(len, pseudonyms))
    if set(map(len, tokens)) != {size} or len(widths) != 1:
        return None
    width = widths.pop()
    rows = np.concatenate([np.frombuffer(b"".join(tokens), dtype=np.uint8).reshape(n, size),
                           np.frombuffer(b"".join(pseudonyms), dtype=np.uint8).reshape(n, width)], axis=1)
    pairs = np.unique(np.ascontiguousarray(rows).view(np.dtype((np.void, size + width))).ravel())
    table = pairs.view(np.uint8).reshape(-1, size + width)
    return len(table), table[:, :size].tobytes(), table[:, size:].tobytes(), width


def add_members(conn: sa.Connection, member_rows: sa.Table, header_id: int, ids: np.ndarray) -> None:
    """Put subject ids in a header's set (ids already there count once)."""
    ids = members.distinct(ids)
    if not len(ids):
        return
    m = member_rows
    low, high = int(ids[0]) >> members.BITS, int(ids[-1]) >> members.BITS
    existing = {block: data for block, data in conn.execute(sa.select(m.c.block, m.c.data).where(
        m.c.header_id == header_id, m.c.block.between(low, high)))}
    fresh, changed = [], []
    for block, part in members.split(ids):
        if block in existing:
            changed.append({"h": header_id, "b": block, "d": members.merge(block, existing[block], part)})
        else:
            fresh.append({"header_id": header_id, "block": block, "data": members.encode(part)})
    if fresh:
        conn.execute(sa.insert(m), fresh)
    if changed:
        conn.execute(sa.update(m).where(m.c.header_id == sa.bindparam("h"), m.c.block == sa.bindparam("b"))
                     .values(data=sa.bindparam("d")), changed)


def migrate_legacy(engine: sa.Engine, write: Any) -> int:
    """Move the rows of the old one-row-per-subject table into the register, once, in one transaction.

    ``write(conn, fields, tokens, pseudonyms, at)`` records one group. Returns the rows moved.
    """
    if not sa.inspect(engine).has_table(LEGACY):
        return 0
    legacy = sa.Table(LEGACY, sa.MetaData(), autoload_with=engine)
    order = [legacy.c[name] for name in HEADER_FIELDS]
    moved = 0
    with engine.begin() as conn:
        group: tuple | None = None
        tokens: list[bytes] = []
        pseudonyms: list[bytes] = []
        at: datetime | None = None

        def flush() -> None:
            if group is not None and tokens:
                write(conn, dict(zip(HEADER_FIELDS, group, strict=True)), tokens, pseudonyms, at)
            tokens.clear()
            pseudonyms.clear()

        rows = conn.execution_options(yield_per=20_000).execute(sa.select(legacy).order_by(*order, legacy.c.id))
        for row in rows:
            fields = tuple(getattr(row, name) for name in HEADER_FIELDS)
            if fields != group:
                flush()
                group, at = fields, row.at  # the group's first row: when the event happened
            elif len(tokens) >= 100_000:  # one disclosure can hold millions: written in parts
                flush()
            tokens.append(members.token(row.lookup))
            pseudonyms.append(members.encode_pseudonym(row.pseudonym))
            moved += 1
        rows.close()
        flush()
        conn.execute(sa.text(f"DROP TABLE {LEGACY}"))
    return moved


def stored_pseudonyms(conn: sa.Connection, blocks: list[tuple[int, bytes]], *,
                      ordered: bool) -> Iterator[list[bytes]]:
    """The stored pseudonyms of the subjects a set's block rows hold (each once), in chunks; in text
    order if ``ordered``.

    A set that holds every id of a range (a cohort first recorded together) is read as that
    range; any other set's ids go through a temporary table. Either way the database does the
    sort, so memory stays flat however many subjects a disclosure holds.
    """
    span = _whole_range(blocks)
    cursor = conn.connection.cursor()
    try:
        if span is not None:
            source = f"FROM subject_pseudonyms s WHERE s.id BETWEEN {span[0]} AND {span[1]}"
        else:
            _fill_set(conn, cursor, blocks)
            source = "FROM subject_set d JOIN subject_pseudonyms s ON s.id = d.id"
        # Raw digests sort as their hex does, so the database's order is the text order; text kept
        # whole (hand-made pseudonyms, rows from before the register) is sorted here instead.
        cursor.execute(f"SELECT 1 {source} AND length(s.pseudonym) NOT IN (0, 32) LIMIT 1"  # noqa: S608 - ints
                       if span is not None else
                       f"SELECT 1 {source} WHERE length(s.pseudonym) NOT IN (0, 32) LIMIT 1")  # noqa: S608
        # psycopg2 turns bytea into Python objects twenty times slower than hex text into bytes.
        column = "encode(s.pseudonym, 'hex')" if conn.dialect.name == "postgresql" else "s.pseudonym"
        read = bytes.fromhex if conn.dialect.name == "postgresql" else bytes
        if ordered and cursor.fetchone() is not None:
            cursor.execute(f"SELECT {column} {source}")  # noqa: S608 - constants and two ints
            found = [read(p) for (p,) in cursor.fetchall()]
            yield sorted(found, key=lambda p: members.decode_pseudonym(p) or "")
            return
        cursor.execute(f"SELECT {column} {source}" + (" ORDER BY s.pseudonym" if ordered else ""))  # noqa: S608
        while chunk := cursor.fetchmany(50_000):
            yield [read(p) for (p,) in chunk]
    finally:
        cursor.close()


def _whole_range(blocks: list[tuple[int, bytes]]) -> tuple[int, int] | None:
    """(first, last) id when the blocks hold every id from first to last, else None."""
    if len({block for block, _data in blocks}) != len(blocks):
        return None  # two sets (one per detail) share a block: ids could repeat, so counting proves nothing
    count, low, high = 0, None, None
    for block, data in blocks:
        ids = members.unpack(block, data)
        if len(ids):
            count += len(ids)
            low = int(ids[0]) if low is None else min(low, int(ids[0]))
            high = int(ids[-1]) if high is None else max(high, int(ids[-1]))
    if low is None or high is None or count != high - low + 1:
        return None
    return low, high


def _fill_set(conn: sa.Connection, cursor: Any, blocks: list[tuple[int, bytes]]) -> None:
    """The temporary table ``subject_set``, holding the set's ids (each once)."""
    arrays = (members.unpack(block, data) for block, data in blocks)
    if conn.dialect.name == "postgresql":
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS subject_set (id bigint PRIMARY KEY) ON COMMIT DELETE ROWS")
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS subject_set_part (id bigint) ON COMMIT DELETE ROWS")
        cursor.execute("TRUNCATE subject_set, subject_set_part")
        for ids in arrays:
            cursor.copy_expert("COPY subject_set_part (id) FROM STDIN",
                               io.StringIO("".join(f"{i}\n" for i in ids.tolist())))
        cursor.execute("INSERT INTO subject_set SELECT DISTINCT id FROM subject_set_part")
        cursor.execute("ANALYZE subject_set")
    else:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS subject_set (id INTEGER PRIMARY KEY)")
        cursor.execute("DELETE FROM subject_set")
        for ids in arrays:
            cursor.executemany("INSERT OR IGNORE INTO subject_set VALUES (?)", [(i,) for i in ids.tolist()])


def hash_lines(digest: Any, chunk: list[bytes]) -> None:
    """Add one line per stored pseudonym (its text, or nothing for none) to ``digest``, as the ledger entry hashes them."""
    if all(len(p) == 32 for p in chunk):  # the usual case, done for the whole chunk at once
        hexed = np.frombuffer(b"".join(chunk).hex().encode(), dtype=np.uint8).reshape(-1, 64)
        digest.update(np.hstack([hexed, np.full((len(chunk), 1), ord("\n"), dtype=np.uint8)]).tobytes())
        return
    for stored in chunk:
        digest.update(f"{members.decode_pseudonym(stored) or ''}\n".encode())
