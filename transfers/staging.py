"""The run's working area, where personal data is only ever stored encrypted.

Each DAG task may run in a different process (or worker), so the steps hand
batches to each other through files. Those files hold personal data, so they
are written as Fernet tokens (AES-128-CBC + HMAC) under a staging key that
comes from a secret, never in clear: a run that crashes half-way leaves
ciphertext, not an extract (invariant 6). The run's ``cleanup`` then removes
them; what is kept (the encrypted deliveries) lives in the outbox.

Layout under ``<home>/runs/<agreement>/<flow>/<logical date>/``::

    extract/part-00000.csv.fernet ...   the extract, in batches
    extract/columns.json                the source's column names (no values)
    prepared/part-00000.csv.fernet ...  minimised and pseudonymised batches
    quarantine.json.fernet              record keys held back by quality
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from cryptography.fernet import Fernet, InvalidToken

from transfers.diskspace import writing
from transfers.errors import ConfigError, StateError
from transfers.files import private_dir, write_atomic


def new_staging_key() -> str:
    """A fresh staging key, for ``AIRFLOW_VAR_TRANSFERS_STAGING_KEY``."""
    return Fernet.generate_key().decode("ascii")


class Staging:
    """Encrypted batch files for one run."""

    def __init__(self, run_dir: Path, key: str | bytes) -> None:
        self.run_dir = Path(run_dir)
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                "the staging key is not a valid Fernet key (32 url-safe base64 bytes); "
                "make one with `transfers keys staging`"
            ) from None

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

    def write_batches(self, stage: str, batches: Iterable[pd.DataFrame], columns: list[str] | None = None) -> dict:
        """Replace ``stage`` with these batches; returns counts only."""
        target = self._dir(stage)
        for old in target.glob("part-*.csv.fernet"):
            old.unlink()
        rows = parts = 0
        seen_columns = columns
        for batch in batches:
            if seen_columns is None:
                seen_columns = [str(c) for c in batch.columns]
            self._write(target / f"part-{parts:05d}.csv.fernet", batch.to_csv(index=False).encode("utf-8"))
            rows += len(batch)
            parts += 1
        with writing(target, "the stage's column list"):
            write_atomic(target / "columns.json", json.dumps({"columns": seen_columns or [], "rows": rows}))
        return {"rows": rows, "parts": parts, "columns": seen_columns or []}

    def columns(self, stage: str) -> list[str]:
        path = self.run_dir / stage / "columns.json"
        if not path.exists():
            raise StateError(f"{self.run_dir}: stage {stage!r} has not run for this flow and date")
        return json.loads(path.read_text())["columns"]

    def rows(self, stage: str) -> int:
        self.columns(stage)
        return json.loads((self.run_dir / stage / "columns.json").read_text())["rows"]

    def read_batches(self, stage: str) -> Iterator[pd.DataFrame]:
        """Yield the stage's batches in order; one empty frame if there were no rows."""
        columns = self.columns(stage)
        parts = sorted((self.run_dir / stage).glob("part-*.csv.fernet"))
        if not parts:
            yield pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
            return
        for part in parts:
            yield pd.read_csv(
                io.BytesIO(self._read(part)), dtype=str, keep_default_na=False, na_values=[""]
            ).astype(object).where(lambda df: df.notna(), None)

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
