"""The one NHS number rule and the one UK postcode rule, pinned by a table, and proof there is one copy."""

from __future__ import annotations

import random
import re
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from transfers.devkit import synthetic
from transfers.privacy import generalise_postcode
from transfers.quality import nhs_number_valid as quality_nhs_number_valid
from transfers.quality.prepare import nhs_numbers_valid as quality_nhs_numbers_valid
from transfers.quality.rules import _FORMATS
from transfers.rules import (
    POSTCODE_PATTERN,
    is_district,
    is_postcode,
    nhs_check_digit,
    nhs_number_valid,
    nhs_numbers_valid,
    postcode_district,
    postcode_parts,
)

PACKAGE = Path(__file__).resolve().parents[3] / "transfers"

NHS_NUMBERS = [
    # (value, valid?, why)
    ("9434765919", True, "NHS Digital's published example"),
    ("943 476 5919", True, "spaces as NHS numbers are written"),
    ("9990000050", True, "11 - (sum mod 11) = 11 means check digit 0"),
    ("9990000051", False, "the check digit must be that 0, not 1"),
    ("9434765910", False, "0 is right only when 11 - (sum mod 11) is 11"),
    ("9434765918", False, "wrong check digit"),
    ("9990000000", False, "11 - 1 = 10: no check digit is valid for these nine digits"),
    ("9990000001", False, "11 - 1 = 10: no check digit is valid for these nine digits"),
    ("943476591", False, "nine digits"),
    ("94347659190", False, "eleven digits"),
    ("943-476-5919", False, "dashes are not spaces"),
    ("94347659l9", False, "a letter l, not a one"),
    ("٩٤٣٤٧٦٥٩١٩", False, "digits, but not ASCII ones"),
    ("", False, "empty"),
]


@pytest.mark.parametrize(("value", "valid", "why"), NHS_NUMBERS, ids=[w for _, _, w in NHS_NUMBERS])
def test_nhs_number_table(value, valid, why):
    assert nhs_number_valid(value) is valid, why
    # quality's scalar and vectorised rule are the same rule, not copies
    assert quality_nhs_number_valid(value) is valid
    assert quality_nhs_numbers_valid(pd.Series([value], dtype=object)).tolist() == [valid]


def test_vectorised_nhs_rule_matches_the_scalar_one_and_keeps_missing_as_none():
    values = [v for v, _, _ in NHS_NUMBERS] + [None]
    assert nhs_numbers_valid(pd.Series(values, dtype=object)).tolist() == [v for _, v, _ in NHS_NUMBERS] + [None]


def test_check_digit_eleven_is_zero_and_ten_is_none():
    assert nhs_check_digit("999000005") == 0  # sum mod 11 == 0 -> 11 -> 0
    assert nhs_check_digit("999000000") is None  # sum mod 11 == 1 -> 10 -> no valid number
    assert nhs_check_digit("943476591") == 9


def test_demo_data_nhs_numbers_pass_the_rule_quality_checks():
    rng = random.Random(7)
    assert all(nhs_number_valid(synthetic.nhs_number(rng)) for _ in range(200))
    assert synthetic.nhs_check_digit is nhs_check_digit


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


def test_one_copy_of_each_rule_in_the_package():
    # Modulus 11 ("11 - ... % 11") and postcode patterns live only in transfers/rules/.
    modulus = re.compile(r"%\s*11\b")
    postcode = re.compile(r"GIR|\[0-9\]\[A-Z\]\{\{?2\}")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "rules" and path.parent.parent == PACKAGE:
            continue
        text = path.read_text(encoding="utf-8")
        if modulus.search(text) or postcode.search(text):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_rules_import_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, transfers.rules; print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
