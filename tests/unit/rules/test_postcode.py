"""The one UK postcode rule, pinned by a table: its shape, district and sector, as quality, privacy, the
agreement and the demo data use it."""

from __future__ import annotations

import re
from datetime import date

import pytest

from transfers.devkit import synthetic
from transfers.privacy import generalise_postcode
from transfers.quality.rules import _FORMATS
from transfers.rules import POSTCODE_PATTERN, is_district, is_postcode, postcode_district, postcode_parts


def test_demo_data_postcodes_pass_the_rule_quality_checks():
    frame = synthetic.referrals(200, date(2026, 11, 23))
    assert frame["postcode"].map(is_postcode).all()
    assert set(frame["postcode"].map(postcode_district)) <= set(synthetic.DISTRICTS)


POSTCODES = [
    # (value, postcode as written?, district, sector, why)
    ("S60 2AB", True, "S60", "S60 2", "A99 9AA"),
    ("s60 2ab", True, "S60", "S60 2", "lower case"),
    ("S602AB", True, "S60", "S60 2", "missing space"),
    (" S60 2AB ", True, "S60", "S60 2", "surrounding spaces"),
    ("M1 1AE", True, "M1", "M1 1", "A9 9AA"),
    ("DN55 1PT", True, "DN55", "DN55 1", "AA99 9AA"),
    ("CR2 6XH", True, "CR2", "CR2 6", "AA9 9AA"),
    ("W1A 0AX", True, "W1A", "W1A 0", "A9A 9AA"),
    ("SW1A 1AA", True, "SW1A", "SW1A 1", "AA9A 9AA"),
    ("GIR 0AA", True, "GIR", "GIR 0", "the one exception"),
    ("gir0aa", True, "GIR", "GIR 0", "the exception, lower case, no space"),
    ("GIR 1AB", False, None, None, "GIR is only ever GIR 0AA"),
    ("AZ1 1AA", False, None, None, "Z is never the second letter of an area"),
    ("AI1 1AA", False, None, None, "I is never the second letter of an area"),
    ("S60 2A", False, None, None, "inward code too short"),
    ("60 2AB", False, None, None, "no area letter"),
    ("ZZ99 QQQ", False, None, None, "inward code starts with a digit"),
    ("S60-2AB", False, None, None, "a dash is not a space"),
    ("ROTHERHAM", False, None, None, "a town"),
    ("", False, None, None, "empty"),
]


@pytest.mark.parametrize(
    ("value", "valid", "district", "sector", "why"), POSTCODES, ids=[p[-1] for p in POSTCODES]
)
def test_postcode_table(value, valid, district, sector, why):
    assert is_postcode(value) is valid, why
    assert bool(re.match(POSTCODE_PATTERN, value.strip())) is valid
    assert postcode_district(value) == district
    assert postcode_parts(value) == ((district, sector) if valid else None)


@pytest.mark.parametrize(
    ("value", "valid", "district", "sector", "why"), POSTCODES, ids=[p[-1] for p in POSTCODES]
)
def test_quality_and_privacy_agree_on_every_postcode(value, valid, district, sector, why):
    # Quality validates with this pattern; privacy generalises only what it accepts.
    regex, _ = _FORMATS["postcode"]
    assert regex == POSTCODE_PATTERN
    assert bool(re.match(regex, value.strip())) is valid, why
    assert generalise_postcode(value, "district") == district, why
    assert generalise_postcode(value, "sector") == sector, why


def test_privacy_reads_any_whitespace_but_quality_wants_the_postcode_as_written():
    # Privacy normalises whitespace (one identifier, one form); a format check looks at the value as written.
    assert postcode_parts("S61  1XY") == ("S61", "S61 1")
    assert not is_postcode("S61  1XY")
    assert postcode_district("S61  1XY") is None


@pytest.mark.parametrize(("value", "ok"), [("S60", True), ("s6", True), ("SW1A", True), ("W1A", True),
                                            ("GIR", True), ("AZ1", False), ("S60 2", False), ("60", False)])
def test_districts(value, ok):
    assert is_district(value) is ok


def test_agreement_districts_use_the_same_rule():
    from transfers.agreement.flow import FieldChecks

    assert FieldChecks.model_validate({"districts": ["s60", "SW1A"]}).districts == ["S60", "SW1A"]
    with pytest.raises(ValueError, match="postcode districts"):
        FieldChecks.model_validate({"districts": ["AZ1"]})
