"""Per-batch preparation: the frame GX validates, with derived columns and cross-batch state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from transfers.agreement import Flow
from transfers.quality.checks import Check
from transfers.quality.rules import (
    _DATE_TEXT,
    _DATETIME_TEXT,
    _HASH_KEYS,
    _KEY_COLUMN,
    _derived,
)
from transfers.rules import nhs_numbers_valid, postcode_district


class _Preparer:
    """Turns a source batch into the frame GX validates, and keeps cross-batch state.

    The frame holds only the agreed fields (blank text counted as missing, an
    absent column as all missing) plus derived columns: parsed dates, numbers,
    NHS number validity, and "first time this key is seen in the run". A
    derived column rather than a custom GX expectation: it keeps the rule in
    plain, tested Python, needs no GX metric registry, and uniqueness across
    batches needs our state anyway. GX then counts, applies ``mostly`` and
    returns the failing rows like for any built-in expectation.
    """

    def __init__(self, flow: Flow, checks: Sequence[Check]) -> None:
        self.flow = flow
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
        self.nulls: dict[str, int] = dict.fromkeys(flow.fields, 0)  # per field, for drift against history
        self.recent = [n for n, s in flow.fields.items() if s.checks.recent is not None]
        self.seen: dict[str, set[int]] = {name: set() for name in self.unique}
        # record key digest -> extract row of its first copy, -1 once a later copy has named it
        self.seen_keys: dict[int, int] = {}
        self.offset = 0  # extract rows before the current batch
        # (extract row of a first copy, batch position of the copy that repeats it) in the current batch:
        # the first copy of a duplicated key fails uniqueness too, as in GX's own uniqueness expectation.
        self.key_firsts: list[tuple[int, int]] = []
        self.newest: dict[str, pd.Timestamp | None] = dict.fromkeys(self.recent)

    def prepare(self, batch: pd.DataFrame) -> pd.DataFrame:
        n = len(batch)
        source = batch.reset_index(drop=True)
        source.columns = [str(c) for c in source.columns]
        source = source.loc[:, ~source.columns.duplicated()]
        data: dict[str, pd.Series] = {}
        for name in self.flow.fields:
            data[name] = _blank_to_null(source[name]) if name in source.columns else pd.Series([None] * n, dtype=object)
        for name in self.when:
            fmt = self.flow.fields[name].checks.format
            ok, parsed = _parse_when(data[name], fmt if fmt in ("date", "datetime") else None)
            data[_derived("parsed", name)] = ok
            data[_derived("when", name)] = parsed
            if name in self.newest and parsed.notna().any():
                top = parsed.max()
                current = self.newest[name]
                self.newest[name] = top if current is None or top > current else current
        for name, other in self.order.items():
            data[_derived("order", name)] = _not_before(data[_derived("when", name)], data[_derived("when", other)])
        for name in self.districts:
            data[_derived("district", name)] = pd.Series(
                [None if v is None else postcode_district(v) for v in data[name].tolist()], dtype=object
            )
        for name in self.flow.fields:
            self.nulls[name] += int(data[name].isna().sum())
        for name in self.nhs:
            data[_derived("nhs", name)] = nhs_numbers_valid(data[name])
        for name in self.numbers:
            data[_derived("number", name)] = pd.to_numeric(data[name], errors="coerce")
        for name in self.unique:
            data[_derived("first", name)] = self._first_seen(pd.DataFrame({name: data[name]}), self.seen[name])
        key = pd.DataFrame({k: data[k] for k in self.flow.key_fields})
        data[_KEY_COLUMN] = self._first_key(key)
        self.offset += n
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    def _first_key(self, frame: pd.DataFrame) -> pd.Series:
        """Like :meth:`_first_seen` for the record key, also noting each duplicated key's first copy."""
        self.key_firsts = []
        out: list[bool | None] = []
        for pos, digest in enumerate(_digests(frame)):
            if digest is None:
                out.append(None)
                continue
            first = self.seen_keys.get(digest)
            if first is None:
                self.seen_keys[digest] = self.offset + pos
                out.append(True)
                continue
            if first >= 0:
                self.key_firsts.append((first, pos))
                self.seen_keys[digest] = -1
            out.append(False)
        return pd.Series(out, dtype=object)

    @staticmethod
    def _first_seen(frame: pd.DataFrame, seen: set[int]) -> pd.Series:
        """True where the key is new to the run, False where an earlier row (any batch) had it, None if null."""
        out: list[bool | None] = []
        for digest in _digests(frame):
            if digest is None:
                out.append(None)
                continue
            if digest in seen:
                out.append(False)
            else:
                seen.add(digest)
                out.append(True)
        return pd.Series(out, dtype=object)


def _digests(frame: pd.DataFrame) -> list[int | None]:
    """A 128-bit digest of each row's values; None where a value is missing."""
    if frame.empty:
        return []
    null = frame.isna().any(axis=1).to_numpy()
    h1, h2 = (pd.util.hash_pandas_object(frame, index=False, hash_key=k).to_numpy() for k in _HASH_KEYS)
    return [None if is_null else (a << 64) | b for is_null, a, b in zip(null, h1.tolist(), h2.tolist(), strict=True)]


def _not_before(later: pd.Series, earlier: pd.Series) -> pd.Series:
    """True where ``later`` is on or after ``earlier``; None where either date is missing or unreadable."""
    both = later.notna() & earlier.notna()
    ok = (later >= earlier).to_numpy()
    return pd.Series([bool(o) if b else None for o, b in zip(ok, both.to_numpy(), strict=True)], dtype=object)


def _blank_to_null(column: pd.Series) -> pd.Series:
    """Blank or whitespace-only text is a missing value, as far as the checks go."""
    out = column.astype(object).copy()
    present = out.notna()
    blank = present & out.astype(str).str.strip().eq("")
    out[~present | blank] = None
    return out


def _map_present(column: pd.Series, rule: Any) -> pd.Series:
    return pd.Series([None if v is None else bool(rule(v)) for v in column.tolist()], dtype=object)


def _parse_when(column: pd.Series, fmt: str | None) -> tuple[pd.Series, pd.Series]:
    """(is-valid flag or None, parsed naive UTC timestamps or NaT) for ISO date/datetime text."""
    text = column.astype("string")
    if fmt == "date":
        shaped = text.str.fullmatch(_DATE_TEXT)
    elif fmt == "datetime":
        shaped = text.str.fullmatch(_DATETIME_TEXT)
    else:
        shaped = text.str.fullmatch(_DATE_TEXT) | text.str.fullmatch(_DATETIME_TEXT)
    shaped = shaped.fillna(False).astype(bool)
    candidates = text.where(shaped)
    if fmt == "date":
        # strict calendar check: 2026-02-30 is shaped like a date but is not one
        parsed = pd.to_datetime(candidates, format="%Y-%m-%d", errors="coerce")
    else:
        parsed = pd.to_datetime(candidates, format="ISO8601", errors="coerce", utc=True).dt.tz_convert(None)
    parsed = pd.Series(parsed.to_numpy(dtype="datetime64[ns]"), index=column.index)
    valid = pd.Series(
        [None if gone else bool(ok) for gone, ok in zip(column.isna(), parsed.notna(), strict=True)],
        index=column.index,
        dtype=object,
    )
    return valid, parsed
