"""A flow run's logical date: the day its data interval starts, on the flow's own clock.

Airflow hands tasks the interval start in UTC. A nightly run at 00:30 London in
summer starts its interval at 23:30 UTC the evening before, so taking the UTC
date would give two runs the same date on the night the clocks go forward (and
none to one night when they go back). Names, partitions and ledger entries use
the date in the flow's timezone instead: one date per night, all year round.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "Europe/London"


def check_timezone(name: str) -> str:
    """Return ``name`` if it is an IANA timezone (``Europe/London``); raise ``ValueError`` otherwise."""
    try:
        if not name or name != name.strip():
            raise ValueError
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"timezone {name!r} is not an IANA timezone name such as {DEFAULT_TIMEZONE!r}") from None
    return name


def flow_date(interval_start: datetime, timezone: str = DEFAULT_TIMEZONE) -> date:
    """The logical date of a run whose data interval starts at ``interval_start``.

    Args:
        interval_start: A timezone-aware moment (Airflow's data interval start, in any zone).
        timezone: The flow's IANA timezone, the one its schedule is written in.

    Raises:
        ValueError: ``interval_start`` is naive: which night it belongs to would be a guess.
    """
    if interval_start.tzinfo is None or interval_start.utcoffset() is None:
        raise ValueError(f"data interval start {interval_start.isoformat()} has no timezone; pass an aware datetime")
    local = interval_start.astimezone(ZoneInfo(timezone))
    return date(local.year, local.month, local.day)  # a plain date, whatever datetime class came in


def flow_today(timezone: str = DEFAULT_TIMEZONE, now: datetime | None = None) -> date:
    """Today on the flow's clock: the day an agreement's ``in_force`` and ``review_by`` dates are judged on.

    At 00:30 London in summer it is still yesterday in UTC, so an agreement would look
    not yet in force on its first night (or still live an hour after it lapsed).
    """
    moment = now if now is not None else datetime.now(ZoneInfo(timezone))
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"moment {moment.isoformat()} has no timezone; pass an aware datetime")
    local = moment.astimezone(ZoneInfo(timezone))
    return date(local.year, local.month, local.day)
