"""ISO 8601 durations as written in agreements (``P7D``, ``P6M``, ``P6Y``, ``PT12H``).

Retention periods are calendar periods: six years after 29 February is 28
February, not 2191.5 days later, so months and years are kept as such and
applied with ``relativedelta`` rather than turned into a ``timedelta``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from dateutil.relativedelta import relativedelta

_PATTERN = re.compile(
    r"^P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?)?$"
)


@dataclass(frozen=True)
class Duration:
    """A calendar-aware period; ``text`` is the ISO 8601 form it came from."""

    text: str
    delta: relativedelta

    def after(self, moment: datetime | date) -> datetime | date:
        """The moment this period after ``moment``."""
        return moment + self.delta

    def before(self, moment: datetime | date) -> datetime | date:
        """The moment this period before ``moment``."""
        return moment - self.delta

    def __str__(self) -> str:
        return self.text


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
