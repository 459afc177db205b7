"""The run's working area, where personal data is only ever stored encrypted.

Each DAG task may run in a different process (or worker), so the steps hand
batches to each other through files. Those files hold personal data, so they
are written encrypted under a staging key that comes from a secret, never in
clear: a run that crashes half-way leaves ciphertext, not an extract
(invariant 6). The run's ``cleanup`` then removes them; what is kept (the
encrypted deliveries) lives in the outbox.

A batch is an Arrow IPC stream (every column a string, a missing value null)
sealed with AES-256-GCM in chunks of at most 4 MiB (see :func:`transfers.stagingseal.seal`), so a
part is read at the speed of a memory copy, not parsed as CSV, and a part whose
chunks were cut short, reordered, swapped with another part's, or that was
renamed, fails to open. The AES key is derived from the staging key (a Fernet
key) with HKDF, afresh for each file. Small JSON documents stay Fernet tokens
under the same key.

Layout under ``<home>/runs/<agreement>/<flow>/<logical date>/``::

    extract/part-00000.arrow.gcm ...    the extract, in batches
    extract/columns.json                the source's column names, row count and rows per part (no values)
    prepared/part-00000.arrow.gcm ...   minimised and pseudonymised batches
    quarantine.json.fernet              record keys held back by quality
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
from cryptography.fernet import Fernet, InvalidToken

from transfers.diskspace import writing
from transfers.errors import ConfigError, StateError
from transfers.files import atomic_file, private_dir, write_atomic
from transfers.stagingseal import SealError, seal, unseal

#: Parts written before 2026-11 (Fernet over CSV); no longer read, see :meth:`Staging._parts`.
_OLD_PARTS = "part-*.csv.fernet"
#: A stage's parts: the only big files of a run's staging (the S3 work store leaves them to be fetched on demand).
PARTS = "part-*.arrow.gcm"
_PARTS = PARTS


class PartStore(Protocol):
    """Where a stage's parts are kept when they are not all on this disk (an S3 work store's task checkout).

    With one, a stage's parts are named from its ``columns.json`` (``part_rows``), a part not here is fetched
    when a reader opens it, and a stage being rewritten has its stored parts replaced.
    """

    def fetch(self, path: Path) -> None:
        """Bring the part ``path`` onto this disk; a StateError naming the object and bucket if it is not stored."""

    def stored(self, folder: Path) -> list[str]:
        """Names of the parts in ``folder`` kept in the store and not fetched (nor replaced) by this task."""

    def replace(self, folder: Path) -> None:
        """The stage in ``folder`` is being rewritten: its stored parts go with this task's commit, unless written."""


def new_staging_key() -> str:
    """A fresh staging key, for ``AIRFLOW_VAR_TRANSFERS_STAGING_KEY``."""
    return Fernet.generate_key().decode("ascii")


def as_table(batch: pd.DataFrame | pa.Table) -> pa.Table:
    """A batch as an all-string Arrow table, exactly as the stage will give it back.

    The stage kept values the way a CSV round trip did before: any value becomes its
    text (as pandas' ``to_csv`` writes it), and an empty string comes back as a
    missing value, so a quality check or a pseudonym sees what it always saw.
    """
    if isinstance(batch, pa.Table):
        table = batch.rename_columns([str(c) for c in batch.column_names])
        columns = [_string_column(table.column(i)) for i in range(table.num_columns)]
        return pa.table(columns, names=table.column_names)
    names = [str(c) for c in batch.columns]
    arrays = []
    for i in range(batch.shape[1]):
        series = batch.iloc[:, i]
        try:
            array = pa.array(series, type=pa.string(), from_pandas=True)
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            # A value that is not text (an int, a date): let pandas write it as its CSV writer always did.
            array = pa.array(_csv_text(series), type=pa.string(), from_pandas=True)
        arrays.append(_string_column(array))
    return pa.table(arrays, names=names)


def _csv_text(series: pd.Series) -> list[str | None]:
    text = series.to_frame().to_csv(index=False, header=False, lineterminator="\n")
    if len(series) == 0:
        return []
    rendered = pd.read_csv(
        io.StringIO(text), header=None, dtype=str, keep_default_na=False, na_values=[""], skip_blank_lines=False
    )[0]
    return [None if v is None or v != v else str(v) for v in rendered.tolist()]


def _string_column(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    empty = pc.equal(array, "")
    if pc.any(empty).as_py():
        array = pc.if_else(empty, pa.scalar(None, pa.string()), array)
    return array


class Staging:
    """Encrypted batch files for one run."""

    def __init__(self, run_dir: Path, key: str | bytes, store: PartStore | None = None) -> None:
        self.run_dir = Path(run_dir)
        self._store = store
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "the staging key is not a valid Fernet key (32 url-safe base64 bytes); "
                "make one with `transfers keys staging`"
            ) from None
        self._master = base64.urlsafe_b64decode(key)  # Fernet() has checked it: 32 bytes

    def _dir(self, stage: str) -> Path:
        path = self.run_dir / stage
        return private_dir(path)

    def _write(self, path: Path, data: bytes) -> None:
        # A cut-short part must not be taken for a whole one: write_atomic leaves it whole or absent.
        with writing(path.parent, f"the run's working file {path.name}"):
            write_atomic(path, self._fernet.encrypt(data))

    def _read(self, path: Path) -> bytes:
        try:
            return self._fernet.decrypt(path.read_bytes())
        except InvalidToken:
            raise ConfigError(
                f"{path}: cannot be decrypted with this staging key (was the key changed mid-run?)"
            ) from None

    def _write_part(self, path: Path, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        plain = sink.getvalue()
        with writing(path.parent, f"the run's working file {path.name}"), atomic_file(path) as fh:
            seal(self._master, memoryview(plain).cast("B"), fh, _label(path))

    def _read_part(self, path: Path) -> pa.Table:
        if self._store is not None and not path.exists():
            self._store.fetch(path)
        try:
            with path.open("rb") as fh:
                plain = unseal(self._master, fh, _label(path))
        except SealError as exc:
            raise ConfigError(
                f"{path}: cannot be decrypted with this staging key (was the key changed mid-run?"
                f" {exc}; run the flow again for this date)"
            ) from None
        with pa.ipc.open_stream(pa.py_buffer(plain)) as reader:
            return reader.read_all()

    def write_batches(
        self, stage: str, batches: Iterable[pd.DataFrame | pa.Table], columns: list[str] | None = None
    ) -> dict:
        """Replace ``stage`` with these batches (DataFrames or Arrow tables); returns counts only."""
        target = self._dir(stage)
        if self._store is not None:  # a retry writing fewer parts leaves none of the earlier ones in the store
            self._store.replace(target)
        for old in [*target.glob(_PARTS), *target.glob(_OLD_PARTS)]:
            old.unlink()
        part_rows: list[int] = []
        seen_columns = columns
        for batch in batches:
            table = as_table(batch)
            if seen_columns is None:
                seen_columns = list(table.column_names)
            self._write_part(target / f"part-{len(part_rows):05d}.arrow.gcm", table)
            part_rows.append(table.num_rows)
        rows = sum(part_rows)
        # ``part_rows``: a reader after row N opens the part holding it, not every part before it (tables_from).
        with writing(target, "the stage's column list"):
            write_atomic(target / "columns.json",
                         json.dumps({"columns": seen_columns or [], "rows": rows, "part_rows": part_rows}))
        return {"rows": rows, "parts": len(part_rows), "columns": seen_columns or []}

    def clear_stage(self, stage: str) -> None:
        """Remove a stage's parts and its column list: a mapped step's plan starts it afresh."""
        target = self._dir(stage)
        for old in [*target.glob(_PARTS), *target.glob(_OLD_PARTS), target / "columns.json"]:
            old.unlink(missing_ok=True)

    def write_part(self, stage: str, index: int, batch: pd.DataFrame | pa.Table) -> int:
        """Write (or overwrite) part ``index`` of a stage written part by part (then :meth:`finish_stage`); its rows."""
        table = as_table(batch)
        self._write_part(self._dir(stage) / f"part-{index:05d}.arrow.gcm", table)
        return int(table.num_rows)

    def finish_stage(self, stage: str, columns: list[str], part_rows: list[int]) -> None:
        """The column list of a stage written by :meth:`write_part`; a StateError names a part missing or extra."""
        target = self._dir(stage)
        found = sorted(p.name for p in target.glob(_PARTS))
        wanted = [f"part-{i:05d}.arrow.gcm" for i in range(len(part_rows))]
        if found != wanted:
            missing, extra = sorted(set(wanted) - set(found)), sorted(set(found) - set(wanted))
            raise StateError(f"{target}: stage {stage!r} is not whole (missing: {', '.join(missing) or 'none'}; "
                             f"not planned: {', '.join(extra) or 'none'})")
        with writing(target, "the stage's column list"):
            write_atomic(target / "columns.json",
                         json.dumps({"columns": columns, "rows": sum(part_rows), "part_rows": part_rows}))

    def columns(self, stage: str) -> list[str]:
        path = self.run_dir / stage / "columns.json"
        if not path.exists():
            raise StateError(f"{self.run_dir}: stage {stage!r} has not run for this flow and date")
        return json.loads(path.read_text())["columns"]

    def rows(self, stage: str) -> int:
        self.columns(stage)
        return json.loads((self.run_dir / stage / "columns.json").read_text())["rows"]

    def part_rows(self, stage: str) -> list[int] | None:
        """Rows in each of the stage's parts, in order; None for a stage written before they were recorded."""
        self.columns(stage)
        rows = json.loads((self.run_dir / stage / "columns.json").read_text()).get("part_rows")
        return None if rows is None else [int(n) for n in rows]

    def _parts(self, stage: str) -> list[Path]:
        folder = self.run_dir / stage
        old = sorted(folder.glob(_OLD_PARTS))
        if old:
            # A run in flight across the upgrade: rare, and one re-run rewrites the stage in the new form.
            raise StateError(
                f"{old[0]}: stage {stage!r} was written by an earlier version (Fernet CSV parts); "
                f"run the flow again for this date ({self.run_dir.name}) to rewrite it"
            )
        if self._store is None:
            return sorted(folder.glob(_PARTS))
        # Named from the stage's own count, not from what is stored: a part an earlier attempt with more parts
        # left behind (its commit cut short before it deleted them) is never read.
        counts = self.part_rows(stage)
        if counts is None:
            return sorted({*folder.glob(_PARTS), *(folder / name for name in self._store.stored(folder))})
        return [folder / f"part-{index:05d}.arrow.gcm" for index in range(len(counts))]

    def fetch_stage(self, stage: str) -> None:
        """Every part of ``stage`` onto this disk, for a reader in another process (which has no store)."""
        if self._store is not None:
            for part in self._parts(stage):
                if not part.exists():
                    self._store.fetch(part)

    def read_tables(self, stage: str) -> Iterator[pa.Table]:
        """Yield the stage's parts in order as Arrow tables of strings; one empty table if there were no rows.

        One part is in memory at a time.
        """
        columns = self.columns(stage)
        parts = self._parts(stage)
        if not parts:
            yield pa.table({c: pa.array([], pa.string()) for c in columns})
            return
        for part in parts:
            yield self._read_part(part)

    def tables_from(self, stage: str, row: int) -> tuple[int, Iterator[pa.Table]]:
        """The stage's tables from the part holding ``row`` (counted from 0) on, and the first row of that part.

        A stage whose ``columns.json`` has no ``part_rows`` (written by an earlier version) is read from its
        first part: ``(0, read_tables(stage))``. A ``row`` past the end gives the last part (a caller
        checks the rows it got against what it expected).
        """
        counts = self.part_rows(stage)
        parts = self._parts(stage)
        if counts is None or not parts or len(counts) != len(parts):
            return 0, self.read_tables(stage)
        first = 0
        skip = 0
        for index, count in enumerate(counts[:-1]):
            if first + count > row:
                break
            first += count
            skip = index + 1
        return first, (self._read_part(part) for part in parts[skip:])

    def read_range(self, stage: str, first: int, stop: int) -> Iterator[pd.DataFrame]:
        """Parts ``first`` to ``stop`` (not included) as frames; with no parts, one empty frame as read_batches."""
        parts = self._parts(stage)
        if not parts and first == 0:
            yield from self.read_batches(stage)
            return
        if not 0 <= first <= stop <= len(parts):
            raise StateError(f"{self.run_dir / stage}: parts {first} to {stop} asked for, the stage has {len(parts)}")
        for part in parts[first:stop]:
            yield as_frame(self._read_part(part))

    def read_batches(self, stage: str) -> Iterator[pd.DataFrame]:
        """Yield the stage's batches in order (object columns of str or None); one empty frame if no rows."""
        for table in self.read_tables(stage):
            yield as_frame(table)

    def write_json(self, name: str, value: object) -> None:
        private_dir(self.run_dir)
        self._write(self.run_dir / f"{name}.json.fernet", json.dumps(value).encode("utf-8"))

    def read_json(self, name: str, default: Any = None) -> Any:
        # JSON as this run's own step wrote it: the caller knows its shape (json.loads is Any too).
        path = self.run_dir / f"{name}.json.fernet"
        return json.loads(self._read(path)) if path.exists() else default

    def clear(self) -> None:
        """Remove the working files (they hold personal data, even if encrypted)."""
        for stage in ("extract", "prepared"):
            shutil.rmtree(self.run_dir / stage, ignore_errors=True)
        for leftover in self.run_dir.glob("*.fernet"):
            leftover.unlink(missing_ok=True)
        for leftover in self.run_dir.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)
        # A quality step killed outright leaves its key index's spilled runs (keyed hashes whose key died with it).
        for leftover in self.run_dir.glob("keys-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def as_frame(table: pa.Table) -> pd.DataFrame:
    """A staged Arrow table as :meth:`Staging.read_batches` gives it: object columns of str or None."""
    if table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in table.column_names})
    return table.to_pandas(types_mapper=None, strings_to_categorical=False).astype(object, copy=False)


def _label(path: Path) -> bytes:
    # Bound into every chunk: a part renamed, or moved to the other stage, no longer opens.
    return f"{path.parent.name}/{path.name}".encode()
