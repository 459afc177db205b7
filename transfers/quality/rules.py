"""Value rules shared by the checks: formats, derived column names (NHS number and postcode rules: transfers.rules)."""

from __future__ import annotations

import re
from datetime import date, datetime, time

# The postcode rule has one copy, shared with privacy and the demo data.
from transfers.rules import POSTCODE_PATTERN

_FORMATS: dict[str, tuple[str, str]] = {
    # format -> (regular expression, plain English); date and datetime are parsed instead (see _Preparer)
    "postcode": (POSTCODE_PATTERN, "is a UK postcode"),
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
