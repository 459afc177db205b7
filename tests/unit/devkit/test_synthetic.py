"""The synthetic generators: clean by default, and with ``defects=`` exactly the defects asked for."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from transfers.devkit import synthetic
from transfers.rules import is_postcode, nhs_number_valid

DAY = date(2026, 11, 23)
GENERATORS = {"referrals": (synthetic.referrals, "referral_id", "risk_level"),
              "ed_attendances": (synthetic.ed_attendances, "attendance_id", "safeguarding_flag")}


def changed_cells(clean: pd.DataFrame, seeded: pd.DataFrame) -> set[tuple[int, str]]:
    differs = ~((clean == seeded) | (clean.isna() & seeded.isna()))
    rows, columns = differs.to_numpy().nonzero()
    return {(int(row), str(clean.columns[col])) for row, col in zip(rows, columns, strict=True)}


def defect_column(defect: str, key: str, mandatory: str) -> str:
    return {"nhs_check_digit": "nhs_number", "future_birth": "date_of_birth", "missing_mandatory": mandatory,
            "duplicate_key": key, "bad_postcode": "postcode"}[defect]


def is_defective(defect: str, frame: pd.DataFrame, row: int, key: str, mandatory: str) -> bool:
    """The test's own reading of each defect, from the value the generator left."""
    found = frame.at[row, defect_column(defect, key, mandatory)]
    return {
        "nhs_check_digit": lambda: not nhs_number_valid(found),
        "future_birth": lambda: date.fromisoformat(found) > DAY,
        "missing_mandatory": lambda: found is None,
        "duplicate_key": lambda: found == frame.at[row - 1, key] and frame[key].duplicated().sum() == 1,
        "bad_postcode": lambda: not is_postcode(found),
    }[defect]()


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_without_defects_every_record_is_clean(generator):
    make, key, mandatory = GENERATORS[generator]
    frame = make(120, DAY)
    assert frame.notna().all().all()
    assert frame[key].is_unique
    assert all(nhs_number_valid(n) for n in frame["nhs_number"])
    assert all(is_postcode(p) for p in frame["postcode"])
    assert all(date.fromisoformat(d) <= DAY for d in frame["date_of_birth"])
    pd.testing.assert_frame_equal(frame, make(120, DAY, defects=()))


@pytest.mark.parametrize("generator", list(GENERATORS))
@pytest.mark.parametrize("defect", synthetic.DEFECTS)
def test_one_defect_asked_for_changes_exactly_its_cell(generator, defect):
    make, key, mandatory = GENERATORS[generator]
    clean, seeded = make(80, DAY), make(80, DAY, defects=[defect])
    row = synthetic.defect_rows(80, [defect])[defect]

    assert changed_cells(clean, seeded) == {(row, defect_column(defect, key, mandatory))}
    assert is_defective(defect, seeded, row, key, mandatory)


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_all_defects_each_on_its_own_record_away_from_the_first(generator):
    make, key, mandatory = GENERATORS[generator]
    clean, seeded = make(80, DAY), make(80, DAY, defects=synthetic.DEFECTS)
    rows = synthetic.defect_rows(80, synthetic.DEFECTS)

    assert len(changed_cells(clean, seeded)) == len(synthetic.DEFECTS)
    assert {row for row, _col in changed_cells(clean, seeded)} == set(rows.values())
    assert all(is_defective(d, seeded, row, key, mandatory) for d, row in rows.items())
    # The demo's consent lists name the first five subjects; a duplicate's first copy is on the row before.
    assert min(rows.values()) - 1 >= 5
    assert len(seeded) == 80


def test_unknown_defect_and_too_few_records_are_refused():
    with pytest.raises(ValueError, match="unknown synthetic defect.*misspelt.*known: nhs_check_digit"):
        synthetic.referrals(80, DAY, defects=["misspelt"])
    with pytest.raises(ValueError, match="at least 12 records"):
        synthetic.ed_attendances(11, DAY, defects=["bad_postcode"])
