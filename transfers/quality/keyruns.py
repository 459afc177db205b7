"""Sorted runs of record-key hashes on disk, so a run's key index holds a fixed amount in memory.

When the in-memory level of a :class:`~transfers.quality.keys.KeyIndex` is
full it is written here as a sorted run: one file of three little-endian
arrays (64-bit hash, 32-bit confirming hash, 32-bit row of the first copy).
A lookup streams each run in fixed chunks with ``pread`` and merge-joins the
batch's sorted hashes against each chunk, so memory stays one chunk whatever
the extract's size. Files are read, never mapped: mapped pages would count in
the process's resident memory like the arrays they replace.

The files sit in a private (0700) temporary directory, removed on
:meth:`RunStore.close` or when the store is garbage collected. Their hashes
are keyed with a random per-index key, so they reveal nothing once the
process that made them has ended.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transfers.diskspace import writing

HASH = np.dtype("<u8")
WORD = np.dtype("<u4")
ENTRY_BYTES = HASH.itemsize + 2 * WORD.itemsize  # 16
NAMED = 0xFFFFFFFF  # the first copy's row once a later copy has named it

ConfirmReader = Callable[[int, int], np.ndarray]


def match_sorted(
    seen: np.ndarray, confirm_of: ConfirmReader, queries: np.ndarray, confirm: np.ndarray
) -> np.ndarray:
    """Position in ``seen`` (sorted hashes) of each sorted query whose hash and confirming hash match, or -1.

    ``confirm_of(start, stop)`` gives the confirming hashes of ``seen[start:stop]``; it is only
    asked for the span that holds hash hits, which are rare. Where several entries share a
    hash the first one confirmed wins, as an earlier-inserted entry sorts first.
    """
    found = np.full(len(queries), -1, dtype=np.int64)
    if not len(seen) or not len(queries):
        return found
    left = np.searchsorted(seen, queries, side="left")
    hit = np.flatnonzero(seen[np.minimum(left, len(seen) - 1)] == queries)
    if not hit.size:
        return found
    left = left[hit]
    right = np.searchsorted(seen, queries[hit], side="right")
    base = int(left.min())
    stored = confirm_of(base, int(right.max()))
    single = right - left == 1
    confirmed = single & (stored[left - base] == confirm[hit])
    found[hit[confirmed]] = left[confirmed]
    for i in np.flatnonzero(~single).tolist():  # two keys seen share a hash: rare
        matches = np.flatnonzero(stored[left[i] - base : right[i] - base] == confirm[hit[i]])
        if matches.size:
            found[hit[i]] = left[i] + matches[0]
    return found


class SortedRun:
    """One spilled level: ``length`` entries sorted by hash, in one file read by offset."""

    def __init__(self, path: Path, hashes: np.ndarray, confirm: np.ndarray, first: np.ndarray) -> None:
        self.path = path
        self.length = len(hashes)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with writing(path.parent, "the quality run's record-key index"):
                for part, dtype in ((hashes, HASH), (confirm, WORD), (first, WORD)):
                    data = np.ascontiguousarray(part, dtype=dtype).data.cast("B")
                    while data:  # os.write may write less than asked
                        data = data[os.write(self._fd, data):]
        except BaseException:
            os.close(self._fd)
            raise

    def _read(self, dtype: np.dtype, section: int, start: int, stop: int) -> np.ndarray:
        offset = section * self.length + start * dtype.itemsize
        data = os.pread(self._fd, (stop - start) * dtype.itemsize, offset)
        return np.frombuffer(data, dtype=dtype)

    def hashes(self, start: int, stop: int) -> np.ndarray:
        return self._read(HASH, 0, start, stop)

    def confirm(self, start: int, stop: int) -> np.ndarray:
        return self._read(WORD, HASH.itemsize, start, stop)

    def first(self, j: int) -> int:
        return int(self._read(WORD, HASH.itemsize + WORD.itemsize, j, j + 1)[0])

    def name(self, j: int) -> None:
        """Mark entry ``j``'s first copy as named, in place: no in-memory list of named keys to grow."""
        offset = (HASH.itemsize + WORD.itemsize) * self.length + j * WORD.itemsize
        os.pwrite(self._fd, np.array([NAMED], dtype=WORD).tobytes(), offset)

    def close(self) -> None:
        os.close(self._fd)


class RunStore:
    """The spilled runs of one key index, oldest first, in a private temporary directory made on first use.

    Args:
        directory: where the temporary directory goes (the run's working directory);
            None or a missing directory: the system's temporary directory.
        chunk: entries read at a time in a lookup (16 bytes each at most).
    """

    def __init__(self, directory: Path | None = None, chunk: int = 1_000_000) -> None:
        self._parent = directory if directory is not None and Path(directory).is_dir() else None
        self._chunk = max(int(chunk), 1)
        self.runs: list[SortedRun] = []
        self._place: list[Path] = []  # the temporary directory once made; shared with the finalizer
        self._finalizer = weakref.finalize(self, _remove, self.runs, self._place)

    def __len__(self) -> int:
        return sum(run.length for run in self.runs)

    @property
    def directory(self) -> Path | None:
        return self._place[0] if self._place else None

    def add(self, hashes: np.ndarray, confirm: np.ndarray, first: np.ndarray) -> None:
        """Write one sorted level as the newest run."""
        if not self._place:
            with writing(self._parent or tempfile.gettempdir(), "the quality run's record-key index"):
                self._place.append(Path(tempfile.mkdtemp(prefix="keys-", dir=self._parent)))  # mode 0700
        self.runs.append(SortedRun(self._place[0] / f"run-{len(self.runs):05d}", hashes, confirm, first))

    def lookup(self, queries: np.ndarray, confirm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(run, position) of each sorted query found in a run, (-1, -1) if in none; the oldest run wins."""
        which = np.full(len(queries), -1, dtype=np.int64)
        where = np.full(len(queries), -1, dtype=np.int64)
        for r, run in enumerate(self.runs):
            for start in range(0, run.length, self._chunk):
                self._join_chunk(run, start, min(start + self._chunk, run.length), queries, confirm, which, where, r)
        return which, where

    def _join_chunk(
        self, run: SortedRun, start: int, stop: int, queries: np.ndarray, confirm: np.ndarray,
        which: np.ndarray, where: np.ndarray, r: int,
    ) -> None:
        seen = run.hashes(start, stop)
        # only the queries inside this chunk's range of hashes can match in it
        lo = int(np.searchsorted(queries, seen[0], side="left"))
        hi = int(np.searchsorted(queries, seen[-1], side="right"))
        if lo == hi:
            return
        open_ = lo + np.flatnonzero(which[lo:hi] < 0)  # a key found in an older run or chunk stays there
        found = match_sorted(seen, lambda a, b: run.confirm(start + a, start + b), queries[open_], confirm[open_])
        hit = found >= 0
        which[open_[hit]] = r
        where[open_[hit]] = start + found[hit]

    def close(self) -> None:
        """Close and delete every run and the temporary directory (also done at garbage collection)."""
        self._finalizer()


def _remove(runs: list[SortedRun], place: list[Path]) -> None:
    for run in runs:
        run.close()
    runs.clear()
    if place:
        shutil.rmtree(place[0], ignore_errors=True)
        place.clear()
