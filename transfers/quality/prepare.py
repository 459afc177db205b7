"""Per-batch preparation: the frame GX validates, with derived columns and cross-batch state."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.compute as pc  # type: ignore[import-untyped]

from transfers.agreement import Flow
from transfers.quality.checks import Check
from transfers.quality.keys import Digest, KeyIndex, key_hash
from transfers.quality.rules import _DATE_TEXT, _DATETIME_TEXT, _KEY_COLUMN, _derived
from transfers.rules import nhs_numbers_mask, nhs_numbers_valid, postcode_districts

__all__ = ["_Preparer", "nhs_numbers_valid"]

# Expectation types whose pandas implementation gives the same result on Arrow-backed text as on
# object text (a test compares them): a column only these read is handed to GX as Arrow text,
# which GX reads many times faster. Any other reader (a hand-written expectation) keeps object.
_ARROW_SAFE = frozenset({
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_in_set",
    "expect_column_values_to_match_regex",
    "expect_column_value_lengths_to_be_between",
})


class _Preparer:
    """Turns a source batch into the frame GX validates, and keeps cross-batch state.

    The frame holds only the agreed fields (blank text counted as missing, an
    absent column as all missing) plus derived columns: parsed dates, numbers,
    NHS number validity, and "first time this key is seen in the run". A
    derived column rather than a custom GX expectation: it keeps the rule in
    plain, tested code, needs no GX metric registry, and uniqueness across
    batches needs our state anyway. GX then counts, applies ``mostly`` and
    returns the failing rows like for any built-in expectation.

    Every column is computed for the whole batch at once (pyarrow, pandas,
    numpy), never value by value in Python. Flags are nullable booleans
    (missing where the value they judge is missing, which GX skips).

    The key indexes spill to disk under ``work_dir`` (the run's working
    directory; None: the system's temporary directory): :meth:`close` deletes
    what they wrote.
    """

    def __init__(
        self, flow: Flow, checks: Sequence[Check], *, hand_written: bool = False, digest: Digest = key_hash,
        work_dir: Path | None = None, keys: bool = True,
    ) -> None:
        self.flow = flow
        self.with_keys = keys  # False: a mapped part, whose seal judges the record key across all parts
        cols = {getattr(ch.expectation, "column", None) for ch in checks if ch.expectation is not None}
        self.when = [n for n in flow.fields if _derived("when", n) in cols or _derived("parsed", n) in cols]
        self.nhs = [n for n in flow.fields if _derived("nhs", n) in cols]
        self.numbers = [n for n in flow.fields if _derived("number", n) in cols]
        self.unique = [n for n in flow.fields if _derived("first", n) in cols]
        self.order = {n: s.checks.after for n, s in flow.fields.items()
                      if s.checks.after is not None and _derived("order", n) in cols}
        self.districts = [n for n in flow.fields if _derived("district", n) in cols]
        # both sides of an order check are compared as parsed dates
        self.when += [n for n in dict.fromkeys([*self.order, *self.order.values()]) if n and n not in self.when]
        self.arrow = set() if hand_written else _arrow_fields(flow, checks)
        # GX copies the frame it validates for each check; a field no row check reads (a name to be
        # dropped) need not be in it, unless a hand-written expectation might filter rows on it.
        read = {getattr(ch.expectation, "column", None) for ch in checks if ch.expectation is not None
                and ch.scope == "rows"}
        self.read = set(flow.fields) if hand_written else read & set(flow.fields)
        self.nulls: dict[str, int] = dict.fromkeys(flow.fields, 0)  # per field, for drift against history
        self.recent = [n for n, s in flow.fields.items() if s.checks.recent is not None]
        self.seen: dict[str, KeyIndex] = {name: KeyIndex(digest, directory=work_dir) for name in self.unique}
        self.keys = KeyIndex(digest, directory=work_dir)  # the record key
        self.offset = 0  # extract rows before the current batch
        # (extract row of a first copy, batch position of the copy that repeats it) in the current batch:
        # the first copy of a duplicated key fails uniqueness too, as in GX's own uniqueness expectation.
        self.key_firsts: list[tuple[int, int]] = []
        self.newest: dict[str, pd.Timestamp | None] = dict.fromkeys(self.recent)

    def close(self) -> None:
        """Delete the key indexes' spilled runs."""
        for index in [*self.seen.values(), self.keys]:
            index.close()

    def prepare(self, batch: pd.DataFrame) -> pd.DataFrame:
        n = len(batch)
        source = batch.reset_index(drop=True)
        source.columns = [str(c) for c in source.columns]
        source = source.loc[:, ~source.columns.duplicated()]
        text: dict[str, pa.Array | pd.Series] = {}
        data: dict[str, pd.Series] = {}
        for name in self.flow.fields:
            value = _cleaned(source[name]) if name in source.columns else pa.nulls(n, pa.string())
            text[name] = value
            self.nulls[name] += value.null_count if isinstance(value, pa.Array) else int(value.isna().sum())
            if name in self.read:
                data[name] = _for_gx(value, arrow=name in self.arrow)
        for name in self.when:
            fmt = self.flow.fields[name].checks.format
            ok, parsed = _parse_when(text[name], fmt if fmt in ("date", "datetime") else None, n)
            data[_derived("parsed", name)] = ok
            data[_derived("when", name)] = parsed
            if name in self.newest and parsed.notna().any():
                top = parsed.max()
                current = self.newest[name]
                self.newest[name] = top if current is None or top > current else current
        for name, other in self.order.items():
            data[_derived("order", name)] = _not_before(data[_derived("when", name)], data[_derived("when", other)])
        for name in self.districts:
            data[_derived("district", name)] = postcode_districts(_series(text[name]))
        for name in self.nhs:
            column = _series(text[name])
            data[_derived("nhs", name)] = _flags(nhs_numbers_mask(column), column.isna().to_numpy())
        for name in self.numbers:
            data[_derived("number", name)] = pd.Series(pd.to_numeric(_objects(text[name]), errors="coerce"))
        for name in self.unique:
            data[_derived("first", name)] = self._first(self.seen[name], [text[name]])[0]
        if self.with_keys:
            data[_KEY_COLUMN], self.key_firsts = self._first(self.keys, [text[k] for k in self.flow.key_fields])
        self.offset += n
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    def _first(self, index: KeyIndex, parts: list[pa.Array | pd.Series]) -> tuple[pd.Series, list[tuple[int, int]]]:
        """True where the key is new to the run, False where an earlier row (any batch) had it, missing if incomplete."""
        missing = np.zeros(len(_series(parts[0])), dtype=bool)
        for part in parts:
            missing |= _series(part).isna().to_numpy()
        first, firsts = index.see([_objects(p) for p in parts], ~missing, self.offset)
        return _flags(first, missing), firsts


def _arrow_fields(flow: Flow, checks: Sequence[Check]) -> set[str]:
    """The agreed fields that only :data:`_ARROW_SAFE` expectations read.

    Only for the derived suite: a hand-written expectation may filter rows on
    any column (``row_condition``), so with one the fields all stay object.
    """
    unsafe: set[str] = set()
    for ch in checks:
        if ch.expectation is None or ch.scope != "rows":
            continue
        config = ch.expectation.configuration
        if config.type not in _ARROW_SAFE or config.kwargs.get("row_condition"):
            kwargs = config.kwargs
            unsafe |= {kwargs.get(k) for k in ("column", "column_A", "column_B")} | set(kwargs.get("column_list") or [])
    return set(flow.fields) - unsafe


def _cleaned(column: pd.Series) -> pa.Array | pd.Series:
    """The column with blank or whitespace-only text as missing: Arrow text, or objects if it holds non-text."""
    values = column.to_numpy(dtype=object)
    try:
        text = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    if text is not None and pa.types.is_null(text.type):
        return pa.nulls(len(values), pa.string())
    if text is not None and pa.types.is_string(text.type):
        # utf8_is_space has exactly str.isspace's whitespace (checked over every code point)
        blank = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))
        return pc.if_else(blank, pa.nulls(len(text), pa.string()), text)
    # Not all text (numbers from a typed source): the values stay as they are, as the checks always read them.
    out = column.astype(object).copy()
    present = out.notna()
    blank = present & out.astype(str).str.strip().eq("")
    out[~present | blank] = None
    return out.reset_index(drop=True)


def _series(value: pa.Array | pd.Series) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(value)) if isinstance(value, pa.Array) else value


def _objects(value: pa.Array | pd.Series) -> np.ndarray:
    """str or None per row, as the rules written for Python values read them."""
    if isinstance(value, pa.Array):
        return value.to_numpy(zero_copy_only=False)
    return value.to_numpy(dtype=object)


def _for_gx(value: pa.Array | pd.Series, *, arrow: bool) -> pd.Series:
    if isinstance(value, pa.Array):
        return _series(value) if arrow else pd.Series(_objects(value), dtype=object)
    return value


def _flags(ok: np.ndarray, missing: np.ndarray) -> pd.Series:
    return pd.Series(pd.arrays.BooleanArray(np.asarray(ok, dtype=bool), np.asarray(missing, dtype=bool)))


def _not_before(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """True where ``later`` is on or after ``earlier``; missing where either date is missing or unreadable."""
    return _flags((later >= earlier).to_numpy(), (later.isna() | earlier.isna()).to_numpy())


def _parse_when(value: pa.Array | pd.Series, fmt: str | None, n: int) -> tuple[pd.Series, pd.Series]:
    """(is-valid flag, missing where the value is; parsed naive UTC timestamps or NaT) for ISO date/datetime text.

    Each distinct text is parsed once: a night's dates repeat (birth dates, a
    month of referral dates), and parsing is the costly part.
    """
    text = value if isinstance(value, pa.Array) else pa.array(value.astype("string"), type=pa.string())
    if fmt == "date":
        shaped = pc.match_substring_regex(text, _DATE_TEXT)
    elif fmt == "datetime":
        shaped = pc.match_substring_regex(text, _DATETIME_TEXT)
    else:
        shaped = pc.or_(pc.match_substring_regex(text, _DATE_TEXT), pc.match_substring_regex(text, _DATETIME_TEXT))
    candidates = pc.if_else(pc.fill_null(shaped, False), text, pa.nulls(n, pa.string()))
    encoded = pc.dictionary_encode(candidates)
    distinct = pd.Series(encoded.dictionary.to_numpy(zero_copy_only=False), dtype=object)
    if fmt == "date":
        # strict calendar check: 2026-02-30 is shaped like a date but is not one
        parsed = pd.to_datetime(distinct, format="%Y-%m-%d", errors="coerce")
    else:
        parsed = pd.to_datetime(distinct, format="ISO8601", errors="coerce", utc=True).dt.tz_convert(None)
    stamps = np.append(parsed.to_numpy(dtype="datetime64[ns]"), np.datetime64("NaT", "ns"))
    codes = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    when = pd.Series(stamps[codes], index=pd.RangeIndex(n))
    missing = pc.is_null(text).to_numpy(zero_copy_only=False)
    return _flags(when.notna().to_numpy(), missing), when
