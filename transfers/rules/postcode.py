"""The UK postcode: is a value one, and what are its district and sector.

The rule is the UK Government Data Standards Catalogue postcode pattern (the
Cabinet Office's BS 7666 "bulk data transfer" regular expression, also the one
gov.uk services validate with): outward codes A9, A99, AA9, AA99, A9A, AA9A with
no I or Z as the second letter of a two-letter area, an inward code 9AA, and
the one exception GIR 0AA. It was chosen over the looser ``[A-Z]{1,2}[0-9]
[A-Z0-9]?`` that privacy used because that one also took shapes no postcode has
(``AZ1 1AA``, ``GIR 1AB``), so privacy would generalise a value to a "district"
that quality had already refused as not a postcode. The finer per-position
letter rules are not applied: the standard's pattern does not, and the ONS
Postcode Directory, not a regex, is the authority on which postcodes exist.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Area + district, as the standard's four alternatives; upper case (callers normalise or use (?i)).
_OUTWARD = r"[A-Z][0-9]{1,2}|[A-Z][A-HJ-Y][0-9]{1,2}|[A-Z][0-9][A-Z]|[A-Z][A-HJ-Y][0-9][A-Z]?"
_INWARD = r"[0-9][A-Z]{2}"

#: A postcode as written: any case, at most one space between outward and inward code.
#: A string (not compiled) because Great Expectations takes the pattern itself.
POSTCODE_PATTERN = rf"(?i)^(?:GIR ?0AA|(?:{_OUTWARD}) ?{_INWARD})$"

_WRITTEN = re.compile(POSTCODE_PATTERN)
_COMPACT = re.compile(rf"^(?:GIR0AA|(?:{_OUTWARD}){_INWARD})$")
_DISTRICT = re.compile(rf"^(?:GIR|{_OUTWARD})$")
_WHITESPACE = re.compile(r"\s+")


def is_postcode(value: object) -> bool:
    """True if ``value`` is a UK postcode as written (surrounding spaces ignored)."""
    return isinstance(value, str) and _WRITTEN.match(value.strip()) is not None


def is_district(value: object) -> bool:
    """True if ``value`` is an outward code alone (``S60``, ``SW1A``), any case, no spaces."""
    return isinstance(value, str) and _DISTRICT.match(value.upper()) is not None


def postcode_parts(value: object) -> tuple[str, str] | None:
    """``(district, sector)`` of a postcode, e.g. ``("S60", "S60 2")``; None if it is not one.

    All whitespace is removed and letters upper-cased first, so ``"  s60   2ab "``
    is read; the inward code is always three characters, so the split is exact.
    """
    if not isinstance(value, str):
        return None
    compact = _WHITESPACE.sub("", value).upper()
    if not _COMPACT.match(compact):
        return None
    district = compact[:-3]
    return district, f"{district} {compact[-3]}"


def postcode_district(value: object) -> str | None:
    """The district (outward code, e.g. ``S60``) of a postcode as written; None if ``value`` is not one.

    Only a value :func:`is_postcode` accepts has a district here: a value that is
    not a postcode is validity's to report, not a second accuracy failure.
    """
    text = str(value).strip()
    if not _WRITTEN.match(text):
        return None
    return text.replace(" ", "").upper()[:-3]


def postcode_districts(column: pd.Series) -> pd.Series:
    """:func:`postcode_district` for a whole column: Arrow-backed text, missing where there is none.

    ASCII values go through pyarrow, where RE2 and ``re`` agree on this pattern
    and ``strip``, ``upper`` and the slice are the same; the rare non-ASCII
    value goes through :func:`postcode_district` itself, so the rule is the same.
    """
    import numpy as np
    import pandas as pd
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    try:
        text = pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = pa.array(column.astype(object).where(column.notna(), None).map(str, na_action="ignore"),
                        type=pa.string(), from_pandas=True)
    trimmed = pc.utf8_trim_whitespace(text)  # the same whitespace as str.strip (checked over every code point)
    ascii_ = pc.fill_null(pc.string_is_ascii(trimmed), True)
    written = pc.fill_null(pc.match_substring_regex(trimmed, POSTCODE_PATTERN), False)
    district = pc.utf8_slice_codeunits(pc.ascii_upper(pc.replace_substring(trimmed, " ", "")), 0, -3)
    out = pc.if_else(written, district, pa.nulls(len(text), pa.string()))
    odd = np.flatnonzero(~ascii_.to_numpy(zero_copy_only=False))
    if odd.size:
        values = out.to_pylist()
        for i in odd.tolist():
            values[i] = postcode_district(text[i].as_py())
        out = pa.array(values, type=pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(out), index=column.index)
