"""Synthetic source data for the demo, tests and benchmarks.

No real person is in here: names come from short lists, NHS numbers are
generated with a valid Modulus 11 check digit in the 999 range that NHS
Digital reserves for testing, and postcodes are Rotherham districts.

The generators make clean data unless asked for ``defects``: the demo seeds a few
(:data:`DEFECTS`), one record each, so its rectification notice has something in it.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd

from transfers.rules import nhs_check_digit

FORENAMES = ["Amelia", "Oliver", "Isla", "Jack", "Ava", "Harry", "Mia", "George", "Lily", "Noah", "Sophie", "Leo"]
SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "Wilson", "Evans", "Walker", "Wright", "Hall", "Green"]
DISTRICTS = ["S60", "S61", "S62", "S63", "S65", "S66"]
RISK = ["low", "medium", "high"]
CATEGORY = ["neglect", "physical", "sexual", "emotional", "exploitation"]
COMPLAINTS = ["fall", "head injury", "burn", "ingestion", "fracture", "breathing difficulty"]

#: Mistakes data owners meet and fix at source, one record each when seeded (``defects=``):
#: an NHS number with a wrong check digit, a date of birth in the future, a mandatory field
#: left empty, a record key given to two records, and a postcode without its inward code.
DEFECTS = ("nhs_check_digit", "future_birth", "missing_mandatory", "duplicate_key", "bad_postcode")


def nhs_number(rng: random.Random) -> str:
    """A valid test-range NHS number (starts 999)."""
    while True:
        nine = "999" + "".join(str(rng.randrange(10)) for _ in range(6))
        check = nhs_check_digit(nine)
        if check is not None:
            return nine + str(check)


def _postcode(rng: random.Random) -> str:
    return f"{rng.choice(DISTRICTS)} {rng.randrange(1, 10)}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}{rng.choice('ABDEFGHJLNPQRSTUWXYZ')}"


def _dob(rng: random.Random, on: date) -> str:
    return (on - timedelta(days=rng.randrange(365, 17 * 365))).isoformat()


def defect_rows(n: int, defects: Collection[str]) -> dict[str, int]:
    """The row each of ``defects`` is seeded at in ``n`` records; a duplicated key is also on the row before.

    Each defect has its own row whichever others are asked for, spread through the
    extract and two or more rows apart, so no record carries two defects and the
    first rows (which the demo's consent lists name) carry none.
    """
    unknown = sorted(set(defects) - set(DEFECTS))
    if unknown:
        raise ValueError(f"unknown synthetic defect(s) {', '.join(unknown)}; known: {', '.join(DEFECTS)}")
    if defects and n < 2 * (len(DEFECTS) + 1):
        raise ValueError(f"seeding defects needs at least {2 * (len(DEFECTS) + 1)} records (asked for {n})")
    return {name: (i + 1) * n // (len(DEFECTS) + 1) for i, name in enumerate(DEFECTS) if name in defects}


def _seed(frame: pd.DataFrame, defects: Collection[str], logical_date: date, *, key: str, mandatory: str) -> None:
    for name, row in defect_rows(len(frame), defects).items():
        if name == "nhs_check_digit":
            number = frame.at[row, "nhs_number"]
            # Any other last digit is wrong: a number has exactly one check digit.
            frame.at[row, "nhs_number"] = number[:-1] + str((int(number[-1]) + 1) % 10)
        elif name == "future_birth":
            frame.at[row, "date_of_birth"] = (logical_date + timedelta(days=365)).isoformat()
        elif name == "missing_mandatory":
            frame.at[row, mandatory] = None
        elif name == "duplicate_key":
            frame.at[row, key] = frame.at[row - 1, key]
        elif name == "bad_postcode":
            frame.at[row, "postcode"] = frame.at[row, "postcode"].split()[0]  # the district alone


def referrals(n: int, logical_date: date, *, seed: int = 1, defects: Collection[str] = ()) -> pd.DataFrame:
    """Children's Services referrals made on ``logical_date`` (flow A's source table).

    ``defects`` (names from :data:`DEFECTS`) are seeded at :func:`defect_rows`; the
    mandatory field left empty is ``risk_level``. Every other value is as without them.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "referral_id": f"R{i:06d}",
                "nhs_number": nhs_number(rng),
                "forename": rng.choice(FORENAMES),
                "surname": rng.choice(SURNAMES),
                "date_of_birth": _dob(rng, logical_date),
                "postcode": _postcode(rng),
                "referral_date": logical_date.isoformat(),
                "risk_level": rng.choice(RISK),
                "category": rng.choice(CATEGORY),
            }
        )
    frame = pd.DataFrame(rows, dtype=object)
    _seed(frame, defects, logical_date, key="referral_id", mandatory="risk_level")
    return frame


def ed_attendances(n: int, logical_date: date, *, seed: int = 2, defects: Collection[str] = ()) -> pd.DataFrame:
    """Emergency Department attendances of children on ``logical_date`` (flow B's export).

    ``defects`` as for :func:`referrals`; the mandatory field left empty is ``safeguarding_flag``.
    """
    rng = random.Random(seed)
    day = datetime.combine(logical_date, datetime.min.time())
    rows = []
    for i in range(n):
        number = nhs_number(rng)
        if i % 3 == 0:  # exports often carry the printed form "999 123 4567"
            number = f"{number[:3]} {number[3:6]} {number[6:]}"
        rows.append(
            {
                "attendance_id": f"ED{logical_date:%Y%m%d}{i:05d}",
                "nhs_number": number,
                "date_of_birth": _dob(rng, logical_date),
                "postcode": _postcode(rng),
                "arrived_at": (day + timedelta(minutes=rng.randrange(24 * 60))).isoformat(),
                "presenting_complaint": rng.choice(COMPLAINTS),
                "safeguarding_flag": rng.choice(["Y", "N", "N", "N"]),
            }
        )
    frame = pd.DataFrame(rows, dtype=object)
    _seed(frame, defects, logical_date, key="attendance_id", mandatory="safeguarding_flag")
    return frame


def write_referrals_table(url: str, frame: pd.DataFrame, *, table: str = "referrals") -> None:
    """Create (or replace) the case-system table in a SQLite or PostgreSQL database."""
    from sqlalchemy import create_engine

    engine = create_engine(url)
    typed = frame.copy()
    for column in ("date_of_birth", "referral_date"):
        typed[column] = pd.to_datetime(typed[column]).dt.date
    try:
        typed.to_sql(table, engine, if_exists="replace", index=False)
    finally:
        engine.dispose()


def write_ed_csv(export_dir: Path, logical_date: date, frame: pd.DataFrame) -> Path:
    """Write the trust's nightly export as ``ed/attendances_<date>.csv``."""
    path = Path(export_dir) / "ed" / f"attendances_{logical_date.isoformat()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def write_consent_lists(
    export_dir: Path, subjects: list[str], logical_date: date, *, withdrawn: int = 0, opted_out: int = 0
) -> tuple[Path, Path]:
    """The trust's consent register and national opt-out list, as the sample flow B reads them.

    The first ``withdrawn`` subjects withdrew consent ten days before the logical
    date; the next ``opted_out`` are on the opt-out list. Both files always exist,
    with their header, so a run can tell "nobody withdrew" from "no register".
    """
    register = Path(export_dir) / "consent" / "register.csv"
    opt_outs = Path(export_dir) / "opt-outs" / "national.csv"
    effective = (logical_date - timedelta(days=10)).isoformat()
    pd.DataFrame(
        {"subject": subjects[:withdrawn], "status": ["withdrawn"] * len(subjects[:withdrawn]),
         "effective": [effective] * len(subjects[:withdrawn])},
        columns=["subject", "status", "effective"],
    ).pipe(_write_csv, register)
    pd.DataFrame({"subject": subjects[withdrawn : withdrawn + opted_out]}, columns=["subject"]).pipe(_write_csv, opt_outs)
    return register, opt_outs


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
