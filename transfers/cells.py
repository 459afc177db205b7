"""Values as the steps see them: every cell a string (dates as ISO 8601) or None.

Whatever the source (a database row, a CSV field, a Parquet column), a value reaches
quality checks and pseudonyms as the same text, and a number never turns into ``12.0``.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pandas as pd

from transfers.errors import SourceError


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):  # psycopg2 gives bytea as a memoryview
        raise SourceError("the source returned a binary column; select text columns only")
    return str(value)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as str or None, column names as str."""
    return pd.DataFrame(
        {str(frame.columns[i]): _column_text(frame.iloc[:, i]) for i in range(frame.shape[1])}, dtype=object
    )


def _column_text(column: pd.Series) -> list[str | None] | Any:
    values = column.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        # Text already (the common case): only the missing cells need a look, not every cell.
        missing = pd.isna(values)
        if all(v is None or v is pd.NaT or isinstance(v, float) for v in values[missing]):
            values = values.copy()
            values[missing] = None
            return values
    return [_text(v) for v in values.tolist()]
