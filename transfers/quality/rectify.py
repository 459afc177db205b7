"""The rectification notice: every record the data owner should fix, and why.

Section 1.5 of the protocol asks partners to tell the data owner about
information found to be inaccurate. The notice lists, per failing record and
check: the record key, its row in the extract, the field, the problem (the
check's plain-English expectation, never the value found) and the
characteristic. It names records, so it is personal data: it is written only
to the sender's reports directory (0700, files 0600, kept under the flow's
``retention.reports``) and is never packaged or delivered.

Rows are streamed to the CSV batch by batch, so a large extract with many
defects does not hold them all in memory; within a batch they are in record
order, so a record's problems are together. Every copy of a duplicated record
key is listed (the first copy when a later one is found). The HTML groups the
first ``HTML_ROWS`` lines by record and points to the CSV for the rest.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from transfers.csv_escape import escape_value
from transfers.files import AtomicFile, private_dir
from transfers.quality.checks import Check

COLUMNS = ("record_key", "row", "field", "problem", "characteristic", "check")
HTML_ROWS = 5000


class Rectification:
    """Collects failing records into ``rectification_<flow>_<date>.csv`` while the checks run."""

    def __init__(self, report_dir: Path, stem: str, key_fields: Sequence[str]) -> None:
        self.dir = Path(report_dir)
        private_dir(self.dir)
        self.path = self.dir / f"rectification_{stem}.csv"
        self.key_fields = list(key_fields)
        self._file = AtomicFile(self.path, text=True, newline="", encoding="utf-8")
        self._fh = self._file.fh
        self._writer = csv.writer(self._fh)
        self._writer.writerow(COLUMNS)
        self.count = 0
        self.records: set[int] = set()
        self._pending: list[tuple[int, int, int, tuple[str, ...]]] = []
        self._starts = np.zeros(1, dtype=np.int64)

    def begin(self, starts: Sequence[int]) -> None:
        """The next rows come from source batches beginning at these batch positions.

        The checks may see several source batches at once; a line is still
        written with the source batch it was found in, so the notice reads the
        same whatever the checks' batch size.
        """
        self._starts = np.asarray(starts, dtype=np.int64)

    def add(self, keys: pd.DataFrame, positions: Sequence[int], offset: int, check: Check) -> None:
        """Record that the rows at ``positions`` of a batch (starting at extract row ``offset``) fail ``check``."""
        self.add_rows(keys, [(offset + int(pos), int(pos)) for pos in positions], check)

    def add_rows(self, keys: pd.DataFrame, rows: Sequence[tuple[int, int]], check: Check) -> None:
        """Record that extract rows fail ``check``: (extract row, batch position of a row with its key)."""
        picked = keys.iloc[[pos for _row, pos in rows]]
        field = ", ".join(self.key_fields) if check.id == "reliability.record_key" else (check.field or "")
        found = np.searchsorted(self._starts, [pos for _row, pos in rows], side="right") - 1
        for (row, _pos), batch, values in zip(rows, found.tolist(), picked.itertuples(index=False, name=None),
                                              strict=True):
            shown = [("" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)) for v in values]
            key = " / ".join(shown) if any(shown) else ""
            line = (key, str(row + 1), field, check.description, check.dimension, check.id)
            self._pending.append((batch, row, len(self._pending), line))
            self.records.add(row)
            self.count += 1

    def flush(self) -> None:
        """Write the current batch's lines, a record's problems together, in row order."""
        for _batch, _row, _n, line in sorted(self._pending):
            # A data owner opens this in a spreadsheet: a key like "=HYPERLINK(...)" must stay text.
            self._writer.writerow(tuple(escape_value(v) for v in line))
        self._pending = []

    def close(self) -> Path:
        self.flush()
        return self._file.commit()

    def abort(self) -> None:
        self._file.abort()

    def write_line(self, row: int, line: Sequence[str]) -> None:
        """Write a line a mapped part found (:class:`PartLines`), as :meth:`flush` writes its own."""
        self._writer.writerow(tuple(escape_value(v) for v in line))
        self.records.add(row)
        self.count += 1


class PartLines(Rectification):
    """A mapped quality part's notice lines, kept as (extract row, line) for its seal to write with the others.

    They name records (personal data): the part stores them only in the run's encrypted staging.
    """

    def __init__(self, key_fields: Sequence[str]) -> None:  # no file: the seal writes the one notice
        self.key_fields = list(key_fields)
        self.count = 0
        self.records = set()
        self._pending = []
        self._starts = np.zeros(1, dtype=np.int64)
        self.lines: list[tuple[int, tuple[str, ...]]] = []

    def flush(self) -> None:
        self.lines += [(row, line) for _batch, row, _n, line in sorted(self._pending)]
        self._pending = []

    def abort(self) -> None:
        self._pending = []


def by_record(lines: Sequence[dict[str, str]]) -> list[dict]:
    """The notice's lines grouped by record (extract row), in row order: each with its problems."""
    records: dict[str, dict] = {}
    for line in lines:
        entry = records.setdefault(line["row"], {"record_key": line["record_key"], "row": line["row"], "problems": []})
        entry["problems"].append(line)
    return sorted(records.values(), key=lambda r: int(r["row"]) if r["row"].isdigit() else 0)


def read_notice(path: Path, limit: int | None = None) -> list[dict[str, str]]:
    """The notice's rows (at most ``limit``), for the HTML page and for tests."""
    out = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if limit is not None and i >= limit:
                break
            out.append(row)
    return out
