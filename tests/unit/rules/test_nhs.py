"""The one NHS number rule (Modulus 11), pinned by a table, and the same rule in quality and the demo data."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from tests.support.quality_flows import BAD_NHS, mod11
from transfers.devkit import synthetic
from transfers.quality import nhs_number_valid as quality_nhs_number_valid
from transfers.quality.prepare import nhs_numbers_valid as quality_nhs_numbers_valid
from transfers.rules import nhs_check_digit, nhs_number_valid, nhs_numbers_valid

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


def test_nhs_number_modulus_11():
    assert nhs_number_valid("943 476 5919")  # NHS Digital's published example
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")
    assert not nhs_number_valid("943476591")
    assert not nhs_number_valid("94347659190")
    assert not nhs_number_valid("943-476-5919")
    assert not nhs_number_valid("94347659l9")
    assert not nhs_number_valid("٩٤٣٤٧٦٥٩١٩")  # digits, but not ASCII ones
    assert mod11(BAD_NHS[:9]) is not None and str(mod11(BAD_NHS[:9])) != BAD_NHS[9]
    assert not nhs_number_valid(BAD_NHS)
    ten = next(f"{n:09d}" for n in range(1, 10_000) if mod11(f"{n:09d}") is None)  # check digit would be 10
    assert not any(nhs_number_valid(ten + d) for d in "0123456789")
    eleven = next(f"{n:09d}" for n in range(1, 10_000) if mod11(f"{n:09d}") == 0)  # 11 -> 0
    assert nhs_number_valid(eleven + "0")
