"""NHS number Modulus 11: the check digit, one value, and a whole column.

Weights 10..2 on the first nine digits; check = 11 - (sum mod 11). A result of
11 means check digit 0; a result of 10 means no valid NHS number has these nine
digits (NHS Data Dictionary, "NHS Number").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

WEIGHTS = tuple(range(10, 1, -1))


def nhs_check_digit(nine: str) -> int | None:
    """The Modulus 11 check digit for nine ASCII digits, or None when no valid digit exists."""
    total = sum(int(d) * w for d, w in zip(nine, WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number_valid(value: str) -> bool:
    """True if ``value`` is ten ASCII digits (spaces ignored) with a valid Modulus 11 check digit."""
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    check = nhs_check_digit(digits[:9])
    return check is not None and check == int(digits[9])


def nhs_numbers_valid(column: pd.Series) -> pd.Series:
    """:func:`nhs_number_valid` for a whole column at once (None where missing), vectorised with numpy.

    The Modulus 11 rule per value in Python was the slowest part of a quality batch.
    numpy and pandas are imported here so the rules stay a light leaf module.
    """
    import pandas as pd

    present = column.notna().to_numpy()
    out = nhs_numbers_mask(column).astype(object)
    out[~present] = None
    return pd.Series(out, index=column.index, dtype=object)


def nhs_numbers_mask(column: pd.Series) -> np.ndarray:
    """True where a value of ``column`` is a valid NHS number, False elsewhere (missing values too).

    Text goes through pyarrow (no Python call per value); a column holding
    anything but text is read as ``astype("string")`` renders it, as before.
    """
    import numpy as np
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    try:
        text = pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = pa.array(column.astype("string"), type=pa.string())
    text = pc.replace_substring(text, " ", "")
    # RE2 and Python agree on this ASCII-only pattern; a non-ASCII digit is no [0-9]
    shaped = pc.fill_null(pc.match_substring_regex(text, r"^[0-9]{10}$"), False).to_numpy(zero_copy_only=False)
    ok = np.zeros(len(column), dtype=bool)
    if shaped.any():
        ten = pc.filter(text, pa.array(shaped))
        offsets = np.frombuffer(ten.buffers()[1], dtype=np.int32)[ten.offset : ten.offset + len(ten) + 1]
        raw = np.frombuffer(ten.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        digits = (raw.reshape(-1, 10) - 48).astype(np.int64)  # every value is ten ASCII digits here
        check = 11 - (digits[:, :9] @ np.array(WEIGHTS)) % 11
        check[check == 11] = 0
        ok[shaped] = (check != 10) & (check == digits[:, 9])
    return ok
