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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# Independent keys for the two hashes; fixed, so a run's hashes are comparable across its batches.
_HASH_KEYS = ("isp-transfers-k1", "isp-transfers-k2")
_NAMED = np.uint32(0xFFFFFFFF)  # the first copy's row once a later copy has named it

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
    """

    def __init__(self, digest: Digest = key_hash) -> None:
        self._digest = digest
        self._hashes = np.empty(0, dtype=np.uint64)  # sorted
        self._confirm = np.empty(0, dtype=np.uint32)
        self._first = np.empty(0, dtype=np.uint32)

    def __len__(self) -> int:
        return len(self._hashes)

    @property
    def nbytes(self) -> int:
        return self._hashes.nbytes + self._confirm.nbytes + self._first.nbytes

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
        hashes = np.asarray(self._digest(lead_values, _HASH_KEYS[0]), dtype=np.uint64)
        confirm = key_hash(lead_values, _HASH_KEYS[1]).astype(np.uint32)
        earlier = self._lookup(hashes, confirm)  # index into the arrays, or -1 for a key new to the run

        firsts: list[tuple[int, int]] = []
        new = earlier < 0
        first[rows[lead[new]]] = True
        for g in np.flatnonzero(~new).tolist():  # keys an earlier batch had: only duplicated ones
            j = earlier[g]
            if self._first[j] != _NAMED:
                firsts.append((int(self._first[j]), int(rows[lead[g]])))
                self._first[j] = _NAMED
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

    def _lookup(self, hashes: np.ndarray, confirm: np.ndarray) -> np.ndarray:
        """Index of each key among those seen, -1 if not seen; a hash hit counts only if confirmed."""
        found = np.full(len(hashes), -1, dtype=np.int64)
        if not len(self._hashes):
            return found
        order = np.argsort(hashes)  # sorted queries walk the seen hashes in order: far fewer cache misses
        left = np.searchsorted(self._hashes, hashes[order], side="left")
        hit = order[self._hashes[np.minimum(left, len(self._hashes) - 1)] == hashes[order]]
        if not hit.size:
            return found
        left = np.searchsorted(self._hashes, hashes[hit], side="left")
        right = np.searchsorted(self._hashes, hashes[hit], side="right")
        single = right - left == 1
        confirmed = single & (self._confirm[left] == confirm[hit])
        found[hit[confirmed]] = left[confirmed]
        for i in np.flatnonzero(~single).tolist():  # two keys seen share a hash: rare
            matches = np.flatnonzero(self._confirm[left[i] : right[i]] == confirm[hit[i]])
            if matches.size:
                found[hit[i]] = left[i] + matches[0]
        return found

    def _insert(self, hashes: np.ndarray, confirm: np.ndarray, first: np.ndarray) -> None:
        # A merge of two sorted runs: linear, and no index array the size of all keys seen.
        order = np.argsort(hashes, kind="stable")
        hashes, confirm, first = hashes[order], confirm[order], first[order]
        at = np.searchsorted(self._hashes, hashes, side="right")
        self._hashes = np.insert(self._hashes, at, hashes)
        self._confirm = np.insert(self._confirm, at, confirm)
        self._first = np.insert(self._first, at, first)
