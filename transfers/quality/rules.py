"""Value rules shared by the checks: formats, the Modulus 11 rule, derived column names."""

from __future__ import annotations

import re
from datetime import date, datetime, time

# --------------------------------------------------------------------------- value rules

_POSTCODE = r"(?i)^(?:GIR ?0AA|(?:[A-Z][0-9]{1,2}|[A-Z][A-HJ-Y][0-9]{1,2}|[A-Z][0-9][A-Z]|[A-Z][A-HJ-Y][0-9][A-Z]?) ?[0-9][A-Z]{2})$"
_FORMATS: dict[str, tuple[str, str]] = {
    # format -> (regular expression, plain English); date and datetime are parsed instead (see _Preparer)
    "postcode": (_POSTCODE, "is a UK postcode"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "is an email address"),
    "integer": (r"^[+-]?[0-9]+$", "is a whole number"),
    "number": (r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$", "is a number"),
}
_DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATETIME_TEXT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")

# Two independent 64-bit hashes make a 128-bit key hash: a false "duplicate"
# (which could block a transfer) is then vanishingly unlikely at any row count.
_HASH_KEYS = ("isp-transfers-k1", "isp-transfers-k2")



def nhs_number_valid(value: str) -> bool:
    """True if ``value`` is ten digits (spaces ignored) with a valid Modulus 11 check digit.

    Weights 10..2 on the first nine digits; check = 11 - (sum mod 11); 11 means
    0 and 10 means no valid number has these nine digits.
    """
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


_POSTCODE_RE = re.compile(_POSTCODE)


def postcode_district(value: object) -> str | None:
    """The district (outward code, e.g. ``S60``) of a UK postcode; None if ``value`` is not a postcode.

    A value that is not a postcode is validity's to report, not a second accuracy failure.
    """
    text = str(value).strip()
    if not _POSTCODE_RE.match(text):
        return None
    compact = text.replace(" ", "").upper()
    return compact[:-3]


def _whole_match(pattern: str) -> str:
    """The agreement says the value must match: anchor the pattern at both ends.

    GX searches (``re.search``) so an unanchored pattern would match a part of a
    value. Leading global flags such as ``(?i)`` must stay first.
    """
    flags = _LEADING_FLAGS.match(pattern)
    head = flags.group(0) if flags else ""
    return rf"{head}\A(?:{pattern[len(head) :]})\Z"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _derived(kind: str, name: str) -> str:
    # Derived columns live beside the agreed fields in the frame GX validates;
    # the double-underscore prefix keeps them apart from any sensible field name.
    return f"__q_{kind}__{name}"


_KEY_COLUMN = "__q_key__"


def _meta(dimension: str, check_id: str) -> dict[str, str]:
    return {"dimension": dimension, "check": check_id}
