"""A CSV export read in batches from any byte stream: a file on disk or an object's body in S3.

pandas reads the stream with every value kept as text. Two faults it would pass over
silently are refused here: a NUL byte (pandas' C parser ends a field there, so the
rest of the value would vanish) and text that is not UTF-8. The error names the row
and column (never the value), found by reading the export a second time, so the
stream is given as ``reopen``, a function that opens it again from the start.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from typing import IO

import pandas as pd

from transfers.errors import SourceError

Opener = Callable[[], IO[bytes]]


class _NulFound(Exception):
    """Raised from inside pandas' read when a chunk holds a NUL byte (caught below, never escapes)."""


class _Stream(io.RawIOBase):
    """Any object with ``read(n)`` as a raw stream of its own, so a ``BufferedReader`` or ``TextIOWrapper`` can sit on it.

    An object's body (botocore's ``StreamingBody``) reports itself closed once read to the end, which
    the io wrappers take for an error; this stream's state is its own. With ``refuse_nul``, a NUL
    byte stops the read as it passes (:class:`_NulFound`), so the export is read once, not scanned first.
    """

    def __init__(self, raw: IO[bytes], *, refuse_nul: bool = False) -> None:
        self._raw, self._refuse_nul = raw, refuse_nul

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if self._refuse_nul and b"\x00" in data:
            raise _NulFound
        buffer[: len(data)] = data
        return len(data)


def _buffered(raw: IO[bytes], *, refuse_nul: bool = False) -> io.BufferedReader:
    return io.BufferedReader(_Stream(raw, refuse_nul=refuse_nul), buffer_size=1 << 20)


def csv_batches(reopen: Opener, where: str, batch_rows: int) -> Iterator[pd.DataFrame]:
    """Batches of ``batch_rows`` rows, object columns of str or None; one empty frame for a header-only file.

    Args:
        reopen: Opens the export's bytes from the start (called once to read, again to place a fault).
        where: How errors name the export (a path, ``s3://bucket/key``).
        batch_rows: Rows per batch; the export is never in memory whole.

    Raises:
        SourceError: The export is empty, broken CSV, holds a NUL byte or is not UTF-8.
    """
    with reopen() as raw, _buffered(raw, refuse_nul=True) as stream:
        try:
            reader = pd.read_csv(
                stream,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                chunksize=batch_rows,
                on_bad_lines="error",
                encoding="utf-8",
            )
            empty = True
            for chunk in reader:
                empty = False
                yield chunk.astype(object).where(chunk.notna(), None)
            if empty:
                yield pd.DataFrame()
        except _NulFound:
            raise SourceError(_bad_field(reopen, where, "contains a NUL byte", lambda raw: b"\x00" in raw)) from None
        except pd.errors.EmptyDataError:
            raise SourceError(f"{where}: the file is empty (no header row)") from None
        except pd.errors.ParserError as exc:
            # pandas names the line ("Expected 5 fields in line 12, saw 6"); it holds no values.
            raise SourceError(f"{where}: broken CSV: {str(exc).strip()}") from None
        except UnicodeDecodeError:
            # pandas' byte offset is into its own buffer; the row and column are what a data engineer can find.
            raise SourceError(_bad_field(reopen, where, "is not UTF-8 text", _not_utf8)) from None
        except csv.Error as exc:
            raise SourceError(f"{where}: broken CSV: {exc}") from None


def csv_header(stream: IO[bytes], where: str) -> list[str]:
    """The header row's column names, reading no further than the first record."""
    try:
        text = io.TextIOWrapper(_buffered(stream, refuse_nul=True), encoding="utf-8", newline="")
        header = next(csv.reader(text), None)
    except _NulFound:
        raise SourceError(f"{where}: the header row contains a NUL byte; fix the export") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"{where}: the header row is not readable CSV ({type(exc).__name__})") from None
    if not header:
        raise SourceError(f"{where}: the file is empty (no header row)")
    return header


def _not_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _bad_field(reopen: Opener, where: str, problem: str, bad: Callable[[bytes], bool]) -> str:
    """Name the first row and column whose raw bytes are ``bad``, never the value.

    Read as Latin-1, every byte is one character, so the CSV structure (ASCII
    commas, quotes, newlines) parses exactly as in UTF-8 and each field maps
    back to its original bytes.
    """
    with reopen() as raw, io.TextIOWrapper(_buffered(raw), encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, [])
        for number, name in enumerate(header, start=1):
            if bad(name.encode("latin-1")):
                return f"{where}: header, column {number}: the column name {problem}; fix the export"
        row = 0
        for row, fields in enumerate(reader, start=1):
            for number, value in enumerate(fields, start=1):
                if bad(value.encode("latin-1")):
                    column = header[number - 1] if number <= len(header) else f"#{number}"
                    return (
                        f"{where}: row {row} (line {reader.line_num}), column {column!r}: the value {problem}; "
                        "fix the export at source (nothing was read)"
                    )
    return f"{where}: the file {problem} (outside any field); fix the export"
