"""ISO 8601 periods: calendar arithmetic, and how a parsed period lives in a pydantic model."""

from __future__ import annotations

import copy
import pickle
from datetime import date, datetime

import pytest
from pydantic import BaseModel, ValidationError

from transfers.durations import Duration, IsoDuration, parse_duration


class Kept(BaseModel):
    period: IsoDuration
    fallback: IsoDuration = parse_duration("P90D")


@pytest.mark.parametrize(
    ("text", "moment", "after"),
    [
        ("P6Y", date(2024, 2, 29), date(2030, 2, 28)),  # a calendar period, not 6 * 365.25 days
        ("P1M", date(2026, 1, 31), date(2026, 2, 28)),
        ("P2W", date(2026, 11, 1), date(2026, 11, 15)),
        ("PT12H", datetime(2026, 11, 1, 18), datetime(2026, 11, 2, 6)),
    ],
)
def test_periods_are_calendar_periods(text, moment, after):
    period = parse_duration(text)

    assert period.after(moment) == after


def test_before_is_the_same_period_back():
    assert parse_duration("P7D").before(date(2026, 3, 3)) == date(2026, 2, 24)
    assert parse_duration("P6M").before(datetime(2026, 8, 31, 0, 30)) == datetime(2026, 2, 28, 0, 30)


@pytest.mark.parametrize(("text", "why"), [("7 days", "not an ISO 8601 duration"), ("P", "not an ISO 8601"),
                                           ("P0D", "zero duration"), (7, "not an ISO 8601 duration")])
def test_bad_periods_say_what_is_wrong(text, why):
    with pytest.raises(ValueError, match=why):
        parse_duration(text)  # type: ignore[arg-type]


def test_a_model_holds_the_parsed_period_and_writes_back_its_text():
    kept = Kept(period=" P6M ")

    assert isinstance(kept.period, Duration) and isinstance(kept.fallback, Duration)
    assert str(kept.period) == "P6M" and kept.period.after(date(2026, 8, 31)) == date(2027, 2, 28)
    assert kept.model_dump() == {"period": "P6M", "fallback": "P90D"}
    assert Kept.model_validate_json(kept.model_dump_json()) == kept
    assert Kept(period=kept.period).period is kept.period  # a period built in code is taken as it is


def test_a_bad_period_in_a_model_names_the_field():
    with pytest.raises(ValidationError) as caught:
        Kept(period="six months")

    (error,) = caught.value.errors()
    assert error["loc"] == ("period",) and "'six months' is not an ISO 8601 duration" in error["msg"]


def test_the_json_schema_shows_a_period_as_iso_text_with_its_default():
    schema = Kept.model_json_schema()["properties"]

    assert schema["period"]["type"] == "string" and schema["period"]["format"] == "duration"
    assert schema["fallback"]["default"] == "P90D"


def test_a_period_is_immutable_and_survives_copy_and_pickle():
    period = parse_duration("P14D")

    with pytest.raises(AttributeError):
        period.text = "P1D"  # type: ignore[misc]
    assert copy.deepcopy(period) == period == pickle.loads(pickle.dumps(period))
    assert hash(period) == hash(parse_duration("P14D")) and period != parse_duration("P15D")
