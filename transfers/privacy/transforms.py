"""Minimise, pseudonymise and generalise one batch before it leaves the sender.

This step is the allow-list of invariant 2 and the pseudonymisation of
invariant 3. It works on one batch at a time (a ``DataFrame`` whose cells are
strings or null), so a large extract never has to be held whole:

* only fields the flow shares (``share`` other than ``drop``) come out, in the
  order the agreement lists them; every other column, including ones the
  agreement never mentions, is dropped;
* ``pseudonymise`` fields become keyed HMAC-SHA256 pseudonyms (hex), computed on
  the normalised identifier so ``"943 476 5919"`` and ``"9434765919"`` match;
* ``generalise`` fields become a year, month or age band at the logical date
  (dates) or a postcode district or sector. A value that cannot be generalised
  becomes null and is counted: it never passes through in clear;
* ``mask`` fields keep only their length's worth of ``*`` and, if declared,
  their last few characters.

The keyed pseudonym itself and the keys it is made with (one per linkage
domain and key id) are in :mod:`transfers.privacy.pseudonyms`.

``PrivacyStats`` says what was done, in counts and field names only, never
values, so it can go to logs, XCom and the ledger.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd

from transfers.agreement import FieldSpec, Flow
from transfers.errors import PrivacyError
from transfers.privacy.pseudonyms import MIN_KEY_BYTES, digests, normalise_all
from transfers.rules import is_district, postcode_parts

# Date part of an ISO 8601 date or date-time; the rest (time, offset) is checked
# by ``datetime.fromisoformat`` so e.g. "2012-05-01Tgarbage" is refused.
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](.+))?$")


@dataclass
class PrivacyStats:
    """What ``apply_privacy`` did to a batch: counts and field names, never values.

    Attributes:
        flow: the flow id.
        logical_date: the run's logical date (ISO).
        rows_in: rows in the batch.
        rows_out: rows returned (privacy never drops rows, so equal to ``rows_in``).
        fields_out: the shared fields, in output order.
        fields_dropped: columns removed: fields marked ``drop`` and columns the
            agreement does not name.
        pseudonymised: per field, values replaced by a pseudonym.
        generalised: per field, values replaced by their year/month/age band/district/sector.
        nulled: per field, non-empty values that could not be generalised and
            were replaced by null instead of passing through in clear.
        masked: per field, values replaced by a mask.
    """

    flow: str
    logical_date: str
    rows_in: int = 0
    rows_out: int = 0
    fields_out: list[str] = field(default_factory=list)
    fields_dropped: list[str] = field(default_factory=list)
    pseudonymised: dict[str, int] = field(default_factory=dict)
    generalised: dict[str, int] = field(default_factory=dict)
    nulled: dict[str, int] = field(default_factory=dict)
    masked: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able copy (for logs, XCom and the ledger)."""
        return asdict(self)

    def merge(self, other: PrivacyStats) -> PrivacyStats:
        """Totals of two batches of the same run (e.g. to log once per run)."""

        def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {name: a.get(name, 0) + b.get(name, 0) for name in dict.fromkeys([*a, *b])}

        return PrivacyStats(
            flow=self.flow,
            logical_date=self.logical_date,
            rows_in=self.rows_in + other.rows_in,
            rows_out=self.rows_out + other.rows_out,
            fields_out=self.fields_out or other.fields_out,
            fields_dropped=list(dict.fromkeys([*self.fields_dropped, *other.fields_dropped])),
            pseudonymised=add(self.pseudonymised, other.pseudonymised),
            generalised=add(self.generalised, other.generalised),
            nulled=add(self.nulled, other.nulled),
            masked=add(self.masked, other.masked),
        )


# --------------------------------------------------------------------------- single values


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # list-like cells are not null
        return False


def generalise_date(value: Any, to: Literal["year", "month"]) -> str | None:
    """A date as its year (``"2012"``) or month (``"2012-05"``).

    Accepts ISO ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SS`` text (or a ``date``).

    Returns:
        The generalised value, or None if the value is null or not a real date:
        an unparseable value is never passed through.

    Raises:
        ValueError: ``to`` is not a date level.
    """
    if to not in ("year", "month"):
        raise ValueError(f"a date generalises to 'year' or 'month', not {to!r}")
    day: date | None
    if isinstance(value, datetime | date):  # datetime and pd.Timestamp are dates too
        day = value if not _is_null(value) else None
    elif isinstance(value, str):
        day = _parse_iso_date(value.strip())
    else:
        day = None
    if day is None:
        return None
    return f"{day.year:04d}" if to == "year" else f"{day.year:04d}-{day.month:02d}"


def _parse_iso_date(text: str) -> date | None:
    match = _ISO_DATE.match(text)
    if not match:
        return None
    try:
        day = date(int(match[1]), int(match[2]), int(match[3]))
        if match[4] is not None:
            datetime.fromisoformat(text)  # only to refuse a malformed time part
    except ValueError:
        return None
    return day


DEFAULT_AGE_BANDS = (0, 5, 10, 16, 18)


def age_band(value: Any, on: date, bands: list[int] | tuple[int, ...] | None = None) -> str | None:
    """A date of birth as an age band at ``on`` (the logical date): ``"10-15"``, ``"18+"``.

    Returns:
        The band, or None if the value is null, not a date, after ``on`` or
        younger than the first band: it is never passed through.
    """
    limits = list(bands or DEFAULT_AGE_BANDS)
    if isinstance(value, datetime):
        born: date | None = value.date()
    elif isinstance(value, date):
        born = value
    elif isinstance(value, str):
        born = _parse_iso_date(value.strip())
    else:
        born = None
    if born is None or born > on:
        return None
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    for low, high in zip(limits, [*limits[1:], None], strict=True):
        if years >= low and (high is None or years < high):
            return f"{low}+" if high is None else f"{low}-{high - 1}"
    return None


def mask(value: Any, keep_last: int = 0) -> str | None:
    """``"*"`` for every character except the last ``keep_last`` (at most a quarter of the value)."""
    if _blank(value):
        return None
    text = str(value).strip()
    visible = min(keep_last, len(text) // 4)
    return "*" * (len(text) - visible) + (text[len(text) - visible :] if visible else "")


def generalise_postcode(value: Any, to: Literal["district", "sector"]) -> str | None:
    """A UK postcode as its district (``"S60"``) or sector (``"S60 2"``).

    Case and spacing are normalised first (``"s602ab"`` → ``"S60"``). A value
    that is already just an outward code generalises to its district.

    Returns:
        The generalised value, or None if the value is null or is not a
        postcode at the requested level: it is never passed through.

    Raises:
        ValueError: ``to`` is not a postcode level.
    """
    if to not in ("district", "sector"):
        raise ValueError(f"a postcode generalises to 'district' or 'sector', not {to!r}")
    if not isinstance(value, str):
        return None
    # The same postcode rule quality validates with, so a value quality refused
    # as not a postcode never comes out here as a "district".
    parts = postcode_parts(value)
    if parts:
        return parts[0] if to == "district" else parts[1]
    # An outward code alone is already a district. Only when written without
    # inner spaces: "S6 0" could be district S6 with sector digit 0, and must
    # not come out as a (wrong, and finer) district "S60".
    outward = value.strip().upper()
    if to == "district" and is_district(outward):
        return outward
    return None


# --------------------------------------------------------------------------- batches


def apply_privacy(
    batch: pd.DataFrame, flow: Flow, *, key: bytes | None, logical_date: date,
    normalised: Mapping[str, pd.Series] | None = None,
) -> tuple[pd.DataFrame, PrivacyStats]:
    """Keep only the flow's shared fields, pseudonymised and generalised as agreed.

    Args:
        batch: one batch of the extract; cells are strings or null.
        flow: the flow whose ``fields`` say what is shared and how.
        key: the HMAC key from the agreement's pseudonymisation secret; needed
            when a shared field is ``share: pseudonymise``.
        logical_date: the run's logical date (recorded in the stats; ages are at this date).
        normalised: by field name, the :func:`normalise_all` of that column of ``batch`` where the
            caller has it already (screening made it), so it is not made again.

    Returns:
        The batch with exactly ``flow.shared_fields`` as columns, in that order
        (nulls as None), and what was done to it.

    Raises:
        PrivacyError: a shared field is missing from the batch, or a key is
            needed and not given. No message carries record values or key material.
    """
    specs = {name: spec for name, spec in flow.fields.items() if spec.share != "drop"}
    missing = [name for name in specs if name not in batch.columns]
    if missing:
        raise PrivacyError(
            f"flow {flow.id}: field(s) {', '.join(map(repr, missing))} shared by the agreement "
            "are not in the extract; nothing was prepared. Check the source query or file "
            "against the agreement's fields."
        )
    needs_key = [name for name, spec in specs.items() if spec.share == "pseudonymise"]
    if needs_key and (key is None or len(key) < MIN_KEY_BYTES):
        # Checked up front, even for an empty batch, so a missing secret fails
        # the first run rather than the first run that happens to have rows.
        problem = "is missing" if not key else f"is shorter than {MIN_KEY_BYTES} bytes"
        raise PrivacyError(
            f"flow {flow.id}: field(s) {', '.join(map(repr, needs_key))} must be pseudonymised but the "
            f"pseudonymisation key {problem}: set the secret named by the agreement's "
            "pseudonymisation.key_secret; nothing was prepared"
        )

    stats = PrivacyStats(
        flow=flow.id,
        logical_date=logical_date.isoformat(),
        rows_in=len(batch),
        fields_out=list(specs),
        fields_dropped=[str(c) for c in batch.columns if c not in specs],
    )
    out: dict[str, list[Any]] = {}
    for name, spec in specs.items():
        column = batch[name]
        if isinstance(column, pd.DataFrame):
            # Two source columns with one name: which one the agreement means is unknowable.
            raise PrivacyError(f"flow {flow.id}: the extract has more than one column named {name!r}")
        values = column.tolist()
        if spec.share == "keep":
            kept = column.to_numpy(dtype=object, copy=True)
            kept[pd.isna(kept)] = None
            out[name] = kept.tolist()
        elif spec.share == "pseudonymise":
            assert key is not None  # checked above; narrows the type
            known = (normalised or {}).get(name)
            if known is not None and not known.index.equals(batch.index):
                known = None  # made for another batch: not these rows
            out[name], done, nulled = _pseudonymise_all(values, key, flow.id, name, known)
            stats.pseudonymised[name] = done
            stats.nulled[name] = nulled
        elif spec.share == "mask":
            out[name] = _per_distinct(values, partial(mask, keep_last=spec.keep_last)).tolist()
            stats.masked[name] = sum(v is not None for v in out[name])
        else:
            out[name], done, nulled = _generalise_all(values, spec, logical_date, flow.id, name)
            stats.generalised[name] = done
            stats.nulled[name] = nulled

    safe = pd.DataFrame(out, columns=list(specs), index=batch.index, dtype=object)
    stats.rows_out = len(safe)
    return safe, stats


def _blank(value: Any) -> bool:
    return _is_null(value) or (isinstance(value, str) and not value.strip())


def _pseudonymise_all(values: list[Any], key: bytes, flow_id: str, name: str,
                      normal: pd.Series | None = None) -> tuple[list[str | None], int, int]:
    column = pd.Series(values, dtype=object)
    if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        for value in values:  # the rare column that is not all text: find what is in it
            if not _blank(value) and not (isinstance(value, int | str) and not isinstance(value, bool)):
                raise PrivacyError(
                    f"flow {flow_id}: field {name!r} holds a {type(value).__name__}, not text; "
                    "extracts must be read as text so identifiers keep their exact form"
                )
    # An empty cell holds no identifier; it stays empty rather than becoming the
    # pseudonym of "" (which would link every blank). Whitespace-only is blank too,
    # and a value is blank exactly when its normalised form is empty.
    if normal is None:
        normal = normalise_all(column)
    present = (normal != "").to_numpy()
    hexes = [digest.hex() for digest in digests(normal[present], key)]
    result = np.full(len(values), None, dtype=object)
    result[present] = hexes
    # Every non-blank identifier gets a pseudonym, so nothing is nulled here;
    # the count is kept so every transformed field reports the same keys.
    return result.tolist(), len(hexes), 0


def _generalise_all(
    values: list[Any], spec: FieldSpec, on: date, flow_id: str, name: str
) -> tuple[list[str | None], int, int]:
    to = spec.to
    convert: Callable[[Any], str | None]
    if to == "year" or to == "month":
        convert = partial(generalise_date, to=to)
    elif to == "district" or to == "sector":
        convert = partial(generalise_postcode, to=to)
    elif to == "age_band":
        bands = spec.bands

        def convert(value: Any) -> str | None:
            return age_band(value, on, bands)
    else:  # the agreement model refuses this; guard against a hand-built FieldSpec
        raise PrivacyError(f"flow {flow_id}: field {name!r} is share: generalise without a level ('to')")
    def blank_or(value: Any) -> str | None:
        return None if _blank(value) else convert(value)

    general = _per_distinct(values, blank_or)
    has = pd.notna(general)
    blank = _per_distinct(values, _blank).astype(bool)
    # never fall back to the value itself: that would leak it in clear
    return general.tolist(), int(has.sum()), int((~has & ~blank).sum())


def _per_distinct(values: list[Any], convert: Callable[[Any], Any]) -> np.ndarray:
    """``convert`` of every value (an object array), called once per distinct text: extract columns
    repeat (dates of birth, postcodes), so a million rows cost a few thousand calls, not a million.

    A column that is not all text (or null) is converted value by value, so values that
    compare equal without being the same (``1``, ``1.0``, ``True``) are never merged.
    """
    column = pd.Series(values, dtype=object)
    if pd.api.types.infer_dtype(column, skipna=True) not in ("string", "empty"):
        return _objects([convert(value) for value in values])
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    # The last slot is what a null becomes: code -1 picks it.
    return _objects([convert(value) for value in uniques] + [convert(None)])[codes]


def _objects(items: list[Any]) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
