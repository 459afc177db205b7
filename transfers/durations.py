"""ISO 8601 durations as written in agreements (``P7D``, ``P6M``, ``P6Y``, ``PT12H``).

Retention periods are calendar periods: six years after 29 February is 28
February, not 2191.5 days later, so months and years are kept as such and
applied with ``relativedelta`` rather than turned into a ``timedelta``.

Agreement models hold :data:`IsoDuration` fields: the text is parsed once, when
the file is loaded (a bad period is reported at its key then), and the value
keeps the text it came from, so documents, reports and the JSON Schema still
show ``P6Y`` as written.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, overload

from dateutil.relativedelta import relativedelta
from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

# The same form for JSON Schema (ECMA-262: no named groups), so editors flag "7 days" as you type.
_SCHEMA_PATTERN = r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?$"
_PATTERN = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


class Duration:
    """A calendar-aware period; ``text`` is the ISO 8601 form it came from.

    Immutable. Not a dataclass: pydantic would then write it out field by field
    (and cannot write a ``relativedelta``) instead of as its text.
    """

    __slots__ = ("text", "delta")
    text: str
    delta: relativedelta

    def __init__(self, text: str, delta: relativedelta) -> None:
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "delta", delta)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Duration is immutable (cannot set {name})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and (self.text, self.delta) == (other.text, other.delta)

    def __hash__(self) -> int:
        return hash((self.text, self.delta))

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __reduce__(self) -> tuple[type[Duration], tuple[str, relativedelta]]:
        # copy and pickle would otherwise restore the slots through __setattr__, which refuses.
        return (Duration, (self.text, self.delta))

    # A datetime stays a datetime; a date stays a date unless the period has hours or minutes
    # (relativedelta then gives a datetime, which is still a date).
    @overload
    def after(self, moment: datetime) -> datetime: ...
    @overload
    def after(self, moment: date) -> date: ...
    def after(self, moment: date) -> date:
        """The moment this period after ``moment``."""
        return moment + self.delta

    @overload
    def before(self, moment: datetime) -> datetime: ...
    @overload
    def before(self, moment: date) -> date: ...
    def before(self, moment: date) -> date:
        """The moment this period before ``moment``."""
        return moment - self.delta

    def __str__(self) -> str:
        return self.text

    # In a pydantic model a Duration is read from its text and written back as it: the model holds
    # the parsed period, documents and the JSON Schema (defaults included) show "P6Y".
    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _parsed, serialization=core_schema.plain_serializer_function_ser_schema(str, return_schema=core_schema.str_schema())
        )

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "duration", "pattern": _SCHEMA_PATTERN}


def parse_duration(text: str) -> Duration:
    """Parse an ISO 8601 duration.

    Raises:
        ValueError: if ``text`` is not of the form ``PnYnMnWnDTnHnM`` or is zero.
    """
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration (examples: P7D, P14D, P6M, P6Y, PT12H)"
        )
    parts = {k: int(v) for k, v in match.groupdict().items() if v}
    if not any(parts.values()):
        raise ValueError(f"{text!r} is a zero duration; a retention period must be positive")
    delta = relativedelta(
        years=parts.get("years", 0),
        months=parts.get("months", 0),
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
    )
    return Duration(text=text.strip(), delta=delta)


def _parsed(value: Any) -> Duration:
    # Models built in code may pass a Duration already; anything else is the file's text.
    return value if isinstance(value, Duration) else parse_duration(value)


#: An ISO 8601 period in an agreement: parsed on load, written back (and in the schema) as its text.
IsoDuration = Annotated[Duration, Field(description="an ISO 8601 period: P7D, P6M, P6Y, PT12H")]
