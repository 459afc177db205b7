"""The disclosure ledger: append-only, hash-chained, anchored outside itself.

Every disclosure, quality result, privacy screening, share without consent,
notice, archive copy and purge is one ``Entry``, written and read as one of the
typed records in ``transfers.ledger.records``. Entries hold names, counts,
hashes, paths and fingerprints, never record values.

Tamper evidence comes in three layers, because each alone has a gap:

1. **Hash chain** (``chain``). ``hash = sha256(prev_hash + canonical JSON of the entry)``,
   starting from 64 zeros, so editing any row breaks that row's hash and
   removing one breaks the next row's link.
2. **Triggers** (``guards``). The table refuses ``UPDATE``/``DELETE`` (and ``TRUNCATE`` on
   PostgreSQL) at the database level, so a mistaken script cannot rewrite
   history. A database owner can drop them; ``verify`` reports that.
3. **Anchors** (``anchor``). A chain cut at the end still verifies, so after each append the
   head (seq + hash) is written to ``anchor_path``; the pipeline also puts
   ``head()`` into each delivery manifest, archived with the delivery. Whoever
   can rewrite the ledger can rewrite the file beside it, so an external anchor
   (a file on another volume, or a versioned S3 object whose history keeps every
   head) is written too. ``verify`` compares the table with all of them, and
   ``transfers ledger verify`` passes it every archived manifest's head: a ledger
   cut short, emptied, deleted or rehashed no longer reaches, or no longer
   matches, the heads recorded outside it.

The package: ``chain`` (entries and hashes, pure), ``store`` (engine, table,
write lock per dialect), ``guards`` (triggers), ``anchor`` (heads outside the
table), ``verify``, ``records`` (the kinds), and this facade. Appends are
serialised across processes, so ``seq`` is gapless even when several Airflow
tasks record at once.

Example:
    with Ledger("sqlite:///var/ledger.db", anchor_path=Path("var/ledger.head")) as ledger:
        entry, created = ledger.record(Withdrawal(agreement="mash", lookup="ab12..."))
        ledger.verify().raise_if_failed()
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

from transfers.errors import LedgerUnavailable
from transfers.ledger import guards
from transfers.ledger.anchor import FileAnchor, S3Anchor, write_heads
from transfers.ledger.chain import (
    GENESIS_HASH,
    MAX_PAYLOAD_BYTES,
    Entry,
    VerifyReport,
    canonical_json,
    chain_hash,
    check_kind,
    normalise_payload,
    utc,
)
from transfers.ledger.records import Record, record_of
from transfers.ledger.store import DEFAULT_TABLE, Store, database_engine, mask_url
from transfers.ledger.verify import verify as _verify

__all__ = ["DEFAULT_TABLE", "GENESIS_HASH", "MAX_PAYLOAD_BYTES", "Entry", "Ledger", "LedgerUnavailable", "Record",
           "VerifyReport", "canonical_json", "chain_hash", "database_engine", "mask_url", "record_of"]

R = TypeVar("R", bound=Record)


class Ledger:
    """The append-only ledger in one database table; a context manager that closes its pool.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path/ledger.db`` or ``postgresql+psycopg2://...``.
        anchor_path: File that holds the head (seq + hash) after each append; without it
            ``verify`` cannot tell a ledger cut short at the end.
        schema: PostgreSQL schema holding the table (it must exist); default the search path.
        table: Table name.
        external_anchor: A ``transfers.ledger.anchor`` anchor outside the ledger's host, written
            after each append and read by ``verify``.

    Raises:
        ConfigError: The URL is malformed, the dialect unsupported, or the schema missing.
        LedgerUnavailable: The database could not be reached.
    """

    def __init__(self, url: str, *, anchor_path: Path | None = None, schema: str | None = None,
                 table: str = DEFAULT_TABLE, external_anchor: FileAnchor | S3Anchor | None = None) -> None:
        self._store = Store(url, schema=schema, table=table)
        self.masked_url = self._store.masked_url
        self.table = self._store.table
        self.anchor_path = Path(anchor_path) if anchor_path is not None else None
        self.external_anchor = external_anchor
        try:
            with self._store.errors("open"), self._store.writing() as conn:
                if self._store.create(conn):
                    guards.install(self._store, conn)
        except BaseException:
            self._store.close()
            raise

    def close(self) -> None:
        """Release the connection pool."""
        self._store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.masked_url!r}, table={self._store.display!r})"

    # ------------------------------------------------------------------ writing

    def record(self, record: Record) -> tuple[Entry, bool]:
        """Append one typed record (its kind, columns, dedupe key and payload); see ``append``."""
        return self.append(record.KIND, agreement=record.agreement, flow=record.flow,
                           logical_date=record.logical_date, recipient=record.recipient,
                           dedupe_key=record.dedupe_key(), payload=record.to_payload(), at=record.at)

    def append(self, kind: str, *, agreement: str, flow: str | None = None, logical_date: date | None = None,
               recipient: str | None = None, dedupe_key: str | None = None,
               payload: dict[str, Any] | None = None, at: datetime | None = None) -> tuple[Entry, bool]:
        """Record one entry at the end of the chain (callers outside the ledger use ``record``).

        Args:
            kind: What happened (``disclosure``, ``quality``, ``purge``...).
            agreement: Agreement id.
            flow: Flow key, if any.
            logical_date: Logical date of the flow run, if any.
            recipient: Receiving partner, if any.
            dedupe_key: If an entry with this key exists, nothing is written.
            payload: Small JSON-serialisable dict; names, counts, hashes, never record values.
            at: When it happened (timezone-aware); default now.

        Returns:
            ``(entry, created)``. ``created`` is False when ``dedupe_key`` was already
            recorded; ``entry`` is then the existing entry, so a re-run never records
            a disclosure twice.

        Raises:
            ValueError: An argument is malformed (naive ``at``, payload not JSON or too large).
            LedgerUnavailable: The database is down or another append held the lock too long.
        """
        check_kind(kind)
        if not agreement:
            raise ValueError(f"ledger entry {kind!r}: agreement is required")
        # Always UTC: SQLite keeps datetimes without an offset, so stored wall time must be UTC
        # for reads and range filters to mean the same thing on both databases.
        at = utc(at or datetime.now(UTC), "at")
        if isinstance(logical_date, datetime):
            # A datetime would be cut to a date by the column and no longer match its hash.
            raise ValueError(f"ledger entry {kind!r}: logical_date must be a date, not a datetime "
                             f"({logical_date.isoformat()}); pass its .date()")
        payload = normalise_payload(kind, payload)
        if dedupe_key is not None and (existing := self.find(dedupe_key)) is not None:
            return existing, False  # a re-run: answered without waiting for the write lock
        store = self._store
        with store.errors("append to"), store.writing() as conn:
            if dedupe_key is not None:  # again under the lock: another process may have just recorded it
                existing = store.one(conn, store.table.c.dedupe_key == dedupe_key)
                if existing is not None:
                    return existing, False
            last = store.last(conn)
            seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
            draft = Entry(seq, at, kind, agreement, flow, logical_date, recipient, dedupe_key, payload,
                          prev_hash, "")
            entry = dataclasses.replace(draft, hash=draft.expected_hash())
            store.insert(conn, entry)
        # After the commit: an anchor must never name an entry that was rolled back.
        write_heads(entry, store.display, self.anchor_path, self.external_anchor)
        return entry, True

    # ------------------------------------------------------------------ reading

    def find(self, dedupe_key: str) -> Entry | None:
        """The entry recorded under ``dedupe_key``, or None."""
        with self._store.errors("read"), self._store.engine.connect() as conn:
            return self._store.one(conn, self._store.table.c.dedupe_key == dedupe_key)

    def find_record(self, cls: type[R], dedupe_key: str) -> R | None:
        """The ``cls`` record recorded under ``dedupe_key``, or None (also when the key holds another kind)."""
        entry = self.find(dedupe_key)
        return cls.from_entry(entry) if entry is not None and entry.kind == cls.KIND else None

    def head(self) -> Entry | None:
        """The last entry (highest seq), or None for an empty ledger."""
        with self._store.errors("read"), self._store.engine.connect() as conn:
            return self._store.last(conn)

    def entries(self, *, kind: str | None = None, agreement: str | None = None, flow: str | None = None,
                since: datetime | None = None, until: datetime | None = None) -> Iterator[Entry]:
        """Entries in seq order, matching every filter given.

        Read a page at a time, each in its own short transaction, so a long ledger
        is never held in memory and a slow consumer never blocks appends.

        Args:
            kind: Only this kind.
            agreement: Only this agreement id.
            flow: Only this flow key.
            since: Only entries recorded at or after this moment (timezone-aware).
            until: Only entries recorded before this moment (timezone-aware).
        """
        # Filters are checked now, not at the first next(); the reading is lazy.
        kinds = (kind,) if kind is not None else None
        return self._store.pages(self._store.conditions(kinds, agreement, flow, since, until))

    def records(self, *classes: type[R], agreement: str | None = None, flow: str | None = None,
                since: datetime | None = None, until: datetime | None = None) -> Iterator[R]:
        """The entries of the given record classes (all kinds written today when none), as records, in seq order.

        Filters as for ``entries``; an entry of a kind no class knows is skipped.
        """
        kinds = tuple(c.KIND for c in classes) or None
        pages = self._store.pages(self._store.conditions(kinds, agreement, flow, since, until))
        return (r for r in map(record_of, pages) if r is not None)  # type: ignore[misc]

    def distinct(self, column: str) -> list[str]:
        """The values ``column`` (``kind``, ``agreement``, ``flow`` or ``recipient``) holds in any entry, sorted."""
        if column not in ("kind", "agreement", "flow", "recipient"):
            raise ValueError(f"ledger column {column!r}: only kind, agreement, flow or recipient")
        return self._store.distinct(column)

    def latest(self, limit: int, *, kind: str | None = None, flow: str | None = None) -> list[Entry]:
        """The last ``limit`` entries matching the filters, in seq order, read with one bounded query.

        For a baseline of recent runs, which must not cost more as the ledger grows.
        """
        kinds = (kind,) if kind is not None else None
        return self._store.latest(limit, self._store.conditions(kinds, None, flow, None, None))

    def latest_records(self, cls: type[R], limit: int, *, flow: str | None = None) -> list[R]:
        """The last ``limit`` ``cls`` records, in seq order (see ``latest``)."""
        return [cls.from_entry(e) for e in self.latest(limit, kind=cls.KIND, flow=flow)]

    # ------------------------------------------------------------------ checking

    def verify(self, *, heads: Iterable[tuple] = ()) -> VerifyReport:
        """Recompute the chain and compare it with every head recorded outside it.

        Args:
            heads: Further ``(seq, hash)`` or ``(seq, hash, label, source)`` heads seen
                outside the ledger, for example the ``ledger_head`` of archived delivery
                manifests; each must still be in the chain. ``label`` names where it was
                read (problems quote it); one line is written per ``source``.

        Returns:
            A report; ``ok`` is False when any entry, link, anchor or trigger is wrong.
            Each problem names the entry seq (``entry 7: ...``) or the anchor.
        """
        return _verify(self._store, anchor_path=self.anchor_path, external_anchor=self.external_anchor,
                       heads=heads)

    def install_guards(self) -> None:
        """(Re)install the triggers that refuse UPDATE/DELETE/TRUNCATE. Idempotent.

        Called when the table is created. A missing trigger is reported by ``verify``
        rather than quietly reinstalled on open, so its removal is not hidden.
        """
        with self._store.errors("install triggers on"), self._store.writing() as conn:
            guards.install(self._store, conn)

