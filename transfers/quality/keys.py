"""Which keys a run has already seen, in compact form: sorted 64-bit hashes, not Python tuples.

Uniqueness is judged over the whole extract, one batch at a time, so the run
must remember every key it has seen. A Python set of tuples cost 65-100 MB per
million rows; here each key seen costs 16 bytes in three numpy arrays kept
sorted by a 64-bit hash (the hash, a second 32-bit hash, the extract row of the
key's first copy), merged batch by batch. Only keys found twice are ever
rendered as tuples, and those are few.

A hash collision must not make a unique record look duplicated (that could
block or hold back a transfer), so a hash hit is only a candidate:

* within a batch, candidates are confirmed on the exact values (rows are
  grouped by their values, not by hash);
* against earlier batches, whose values are gone, a candidate is confirmed by
  the second, independent hash: a false duplicate then needs two hashes to
  collide at once (96 bits; about 1 in 10^15 at ten million keys).

Memory does not grow with the extract: at most ``capacity`` keys are held in
the arrays; past that the sorted level is spilled to disk as a sorted run
(:mod:`transfers.quality.keyruns`) and looked up there chunk by chunk. Both
hashes are keyed with a random key made per index, so the spilled files mean
nothing once the run has ended. Close the index (or use it as a context
manager) to delete them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import pandas as pd

from transfers.quality.keyruns import NAMED, RunStore, match_sorted

_NAMED = np.uint32(NAMED)
CAPACITY = 1_000_000  # keys held in memory by default: 16 MB, enough for most nights without touching disk

Digest = Callable[[Sequence[np.ndarray], str], np.ndarray]


def key_hash(columns: Sequence[np.ndarray], hash_key: str) -> np.ndarray:
    """A 64-bit hash (uint64) of each row of ``columns`` (object arrays of text, none missing)."""
    frame = pd.DataFrame({i: column for i, column in enumerate(columns)}, copy=False)
    # categorize=False: keys are mostly distinct, so factorising first would only add a pass
    hashed = pd.util.hash_pandas_object(frame, index=False, hash_key=hash_key, categorize=False)
    return hashed.to_numpy(dtype=np.uint64)


def _groups(columns: Sequence[np.ndarray]) -> np.ndarray:
    """A code per row, equal exactly where every column's value is equal, numbered in order of appearance."""
    codes = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        part, uniques = pd.factorize(column)
        codes, _ = pd.factorize(codes * max(len(uniques), 1) + part)
    return codes


class KeyIndex:
    """The keys seen so far in a run, and where each first appeared.

    Args:
        digest: the 64-bit hash (a seam: a test forces collisions with it); the
            confirming hash is always :func:`key_hash` with its own key.
        capacity: keys held in memory (16 bytes each) before they are spilled to disk;
            None: :data:`CAPACITY`.
        directory: where spilled runs go, in a private temporary directory (the run's
            working directory); None: the system's temporary directory.
        chunk: spilled entries read at a time in a lookup.
    """

    def __init__(
        self,
        digest: Digest = key_hash,
        *,
        capacity: int | None = None,
        directory: Path | None = None,
        chunk: int = 1_000_000,
    ) -> None:
        self._digest = digest
        # random per index: comparable across this run's batches, meaningless after it (16 chars, as pandas needs)
        self._hash_keys = (secrets.token_hex(8), secrets.token_hex(8))
        self._capacity = max(int(CAPACITY if capacity is None else capacity), 1)
        self._hashes = np.empty(0, dtype=np.uint64)  # sorted
        self._confirm = np.empty(0, dtype=np.uint32)
        self._first = np.empty(0, dtype=np.uint32)
        self._runs = RunStore(directory, chunk)  # older keys, spilled; oldest first

    def __len__(self) -> int:
        return len(self._hashes) + len(self._runs)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory by the keys (never more than 16 x ``capacity``)."""
        return self._hashes.nbytes + self._confirm.nbytes + self._first.nbytes

    @property
    def spilled(self) -> int:
        """How many sorted runs are on disk."""
        return len(self._runs.runs)

    @property
    def directory(self) -> Path | None:
        """The private temporary directory of the spilled runs, once there is one."""
        return self._runs.directory

    def close(self) -> None:
        """Delete the spilled runs; the index is then empty."""
        self._runs.close()
        self._hashes = np.empty(0, dtype=np.uint64)
        self._confirm = np.empty(0, dtype=np.uint32)
        self._first = np.empty(0, dtype=np.uint32)

    def __enter__(self) -> KeyIndex:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def see(
        self, columns: Sequence[np.ndarray], complete: np.ndarray, offset: int
    ) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Note a batch's keys; say which rows are the first of their key in the run.

        Args:
            columns: the key's columns for the batch (object arrays; values at incomplete rows are ignored).
            complete: True where every part of the key is present.
            offset: extract rows before this batch.

        Returns:
            ``(first, firsts)``: per row, True where the key is new to the run and False where an
            earlier row had it (incomplete rows: False, the caller masks them); and, for each key
            seen a second time in this batch, (extract row of its first copy, batch position of
            the copy that repeats it), in the order of the repeating copies.
        """
        n = len(complete)
        if offset + n >= int(_NAMED):
            raise ValueError(f"an extract of more than {int(_NAMED) - 1} rows is beyond the key index")
        first = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(complete)
        if rows.size == 0:
            return first, []
        values = [np.asarray(c, dtype=object)[rows] for c in columns]
        codes = _groups(values)
        # codes are numbered in order of appearance, so each group's first row comes in code order
        _, lead, counts = np.unique(codes, return_index=True, return_counts=True)
        lead_values = [v[lead] for v in values]
        hashes = np.asarray(self._digest(lead_values, self._hash_keys[0]), dtype=np.uint64)
        confirm = key_hash(lead_values, self._hash_keys[1]).astype(np.uint32)
        level, earlier = self._lookup(hashes, confirm)  # (run or -1 for memory, position); position -1: new

        firsts: list[tuple[int, int]] = []
        new = earlier < 0
        first[rows[lead[new]]] = True
        for g in np.flatnonzero(~new).tolist():  # keys an earlier batch had: only duplicated ones
            row = self._name(int(level[g]), int(earlier[g]))
            if row is not None:
                firsts.append((row, int(rows[lead[g]])))
        repeated = np.flatnonzero(new & (counts > 1))
        if repeated.size:
            # the second copy of each key new in this batch names its first copy
            order = np.argsort(codes, kind="stable")
            starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
            second = rows[order[starts[repeated] + 1]]
            firsts += [(offset + int(rows[lead[g]]), int(s)) for g, s in zip(repeated.tolist(), second.tolist(),
                                                                             strict=True)]
        firsts.sort(key=lambda pair: pair[1])

        row_of_first = (offset + rows[lead[new]]).astype(np.uint32)
        row_of_first[counts[new] > 1] = _NAMED
        self._insert(hashes[new], confirm[new], row_of_first)
        return first, firsts

    def _name(self, level: int, j: int) -> int | None:
        """The row of entry ``j``'s first copy, marking it named; None if a later copy had named it already."""
        if level < 0:
            row = int(self._first[j])
            self._first[j] = _NAMED
        else:
            run = self._runs.runs[level]
            row = run.first(j)
            if row != NAMED:
                run.name(j)
        return None if row == NAMED else row

    def _lookup(self, hashes: np.ndarray, confirm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(level, position) of each key among those seen (level -1: in memory), position -1 if not seen.

        A hash hit counts only if confirmed. Spilled runs are older than the keys in memory, so
        they are searched first: where two entries match, the older one wins, as in one sorted array.
        """
        order = np.argsort(hashes)  # sorted queries walk the seen hashes in order: far fewer cache misses
        queries, checks = hashes[order], confirm[order]
        level, found = self._runs.lookup(queries, checks)
        open_ = np.flatnonzero(found < 0)
        here = match_sorted(self._hashes, lambda a, b: self._confirm[a:b], queries[open_], checks[open_])
        found[open_] = here
        level[open_[here >= 0]] = -1
        out_level = np.empty_like(level)
        out_found = np.empty_like(found)
        out_level[order], out_found[order] = level, found
        return out_level, out_found

    def _insert(self, hashes: np.ndarray, confirm: np.ndarray, first: np.ndarray) -> None:
        # A merge of two sorted runs: linear, and no index array the size of all keys seen.
        order = np.argsort(hashes, kind="stable")
        hashes, confirm, first = hashes[order], confirm[order], first[order]
        if len(self._hashes) + len(hashes) > self._capacity:
            self._spill()
        if len(hashes) > self._capacity:  # a batch with more new keys than memory holds goes straight to disk
            self._runs.add(hashes, confirm, first)
            return
        at = np.searchsorted(self._hashes, hashes, side="right")
        self._hashes = np.insert(self._hashes, at, hashes)
        self._confirm = np.insert(self._confirm, at, confirm)
        self._first = np.insert(self._first, at, first)

    def _spill(self) -> None:
        if len(self._hashes):
            self._runs.add(self._hashes, self._confirm, self._first)
            self._hashes = np.empty(0, dtype=np.uint64)
            self._confirm = np.empty(0, dtype=np.uint32)
            self._first = np.empty(0, dtype=np.uint32)
