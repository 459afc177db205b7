"""One prepare step's subjects, written to the register in two phases.

The register's lookup index is ordered by a keyed hash, so a night's new subjects land on random
pages of it. Written batch by batch, each transaction rewrote (and journaled) most of the index:
at 4M new subjects the fourth million alone wrote 3.7 GB, and a 10M-row night wrote 45 GB.
Here a batch only reads the register: subjects it already holds go into their sets at once, new
ones wait in a temporary table of this step's own connection. At the end they go into the
register in one insert sorted by lookup token, which walks the index once, then into their sets
(every :data:`FLUSH_EVERY` new subjects, so no one insert holds the register for long).

If the step fails before the end, the temporary table goes with the connection: the failed
attempt's set keeps only the subjects the register already knew, and ``forget_prepared`` drops
it as it drops any attempt no disclosure points at.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from transfers.privacy import register

if TYPE_CHECKING:
    from transfers.privacy.subjects import SubjectIndex


#: New subjects staged before they are added part-way through the step: the sorted insert holds
#: the register's write lock (SQLite: the whole database's) while it runs, a few seconds per million.
FLUSH_EVERY = 2_000_000


class StagedSubjects:
    """The sets one prepare step records, on one connection held for the step."""

    def __init__(self, index: SubjectIndex, *, flush_every: int = FLUSH_EVERY) -> None:
        self._index = index
        self._flush_every = flush_every
        self._waiting = 0
        self._conn = index.engine.connect()
        self._headers: dict[tuple[Any, ...], int] = {}
        with self._conn.begin():
            register.make_staged(self._conn)
            self._conn.exec_driver_sql("DELETE FROM subject_staged")  # a pooled connection's leftovers

    def add(self, fields: dict[str, Any], tokens: Sequence[bytes], pseudonyms: Sequence[bytes]) -> None:
        """Note one event's subjects: ``tokens`` as :func:`members.token` gives them, ``pseudonyms``
        as :func:`members.encode_pseudonym` does."""
        if not len(tokens):
            return
        with self._conn.begin():
            header_id = self._header(fields)
            known, staged = register.stage(self._conn, header_id, list(tokens), list(pseudonyms))
            register.add_members(self._conn, self._index.members, header_id, known)
        self._waiting += staged
        if self._waiting >= self._flush_every:
            self.flush()

    def flush(self) -> int:
        """Add the staged subjects to the register and their sets, in one transaction; return how many were new."""
        with self._conn.begin():
            added = register.add_staged(self._conn)
            for header_id in self._headers.values():
                for ids in register.staged_ids(self._conn, header_id):
                    register.add_members(self._conn, self._index.members, header_id, ids)
            self._conn.exec_driver_sql("DELETE FROM subject_staged")
        self._waiting = 0
        return added

    def close(self) -> None:
        """Give the connection back, dropping anything staged and not flushed."""
        try:
            with self._conn.begin():
                self._conn.exec_driver_sql("DROP TABLE IF EXISTS subject_staged")
        finally:
            self._conn.close()

    def _header(self, fields: dict[str, Any]) -> int:
        key = tuple(fields.get(name) for name in register.HEADER_FIELDS)
        if key not in self._headers:
            self._headers[key] = register.header(self._conn, self._index.headers, fields, at=datetime.now(UTC))
        return self._headers[key]
