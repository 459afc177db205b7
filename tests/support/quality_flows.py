"""One test flow and its data for the quality tests: a clean extract, the seeded defects, and a quality run.

Shared by ``tests/unit/quality/``, ``tests/unit/rules/test_nhs.py`` and ``tests/unit/reports/``, so it lives
here rather than in one test file (a test file is never imported by another). Every seeded defect value is
distinctive, so a leak of one into a report or summary can be searched for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality import QualityOutcome, check_quality

DAY = date(2026, 6, 2)
N = 12

# Seeded defect values, each distinctive, so a leak into a report can be searched for.
BAD_NHS = "9990001236"  # nine digits of a valid number with the wrong check digit (see tests/unit/rules/test_nhs.py)
BAD_POSTCODE = "ZZ99 QQQ"
OUT_OF_SET = "catastrophic"
EXTRA_VALUE = "Zebedee-Extra-Value"
FORENAME = "Quillon"


def mod11(nine: str) -> int | None:
    """The test's own Modulus 11 (not the code under test's)."""
    total = sum(int(d) * (10 - i) for i, d in enumerate(nine))
    check = 11 - total % 11
    return 0 if check == 11 else (None if check == 10 else check)


def valid_nhs(seed: int) -> str:
    n = seed * 7
    while True:
        nine = f"999{n:06d}"
        check = mod11(nine)
        if check is not None:
            return nine + str(check)
        n += 1


def make_flow(
    on_failure: dict[str, str] | None = None, *, max_age: str | None = "P3D", required_nhs: bool | float = True
) -> Flow:
    return Flow.model_validate(
        {
            "id": "T",
            "name": "Test referrals",
            "from": "sender",
            "to": [{"partner": "receiver", "sftp": "rx_sftp", "path": "in", "pgp_fingerprint": "AB" * 20}],
            "source": {"kind": "csv", "connection": "src", "path": "x.csv"},
            "subject": "nhs_number",
            "record_key": "referral_id",
            "fields": {
                "referral_id": {
                    "share": "keep",
                    "checks": {"required": True, "unique": True, "pattern": "^R[0-9]{6}$"},
                },
                "nhs_number": {"share": "pseudonymise", "checks": {"required": required_nhs, "nhs_number": True}},
                "forename": {"share": "drop"},
                "date_of_birth": {
                    "share": "generalise",
                    "to": "year",
                    "checks": {"required": True, "format": "date", "not_future": True, "not_before": "2000-01-01"},
                },
                "postcode": {"share": "generalise", "to": "district", "checks": {"format": "postcode"}},
                "referral_date": {
                    "share": "keep",
                    "checks": {"required": True, "format": "date", "not_future": True, "recent": "P30D"},
                },
                "risk_level": {"share": "keep", "checks": {"required": True, "in": ["low", "medium", "high"]}},
                "category": {"share": "keep", "checks": {"in": ["neglect", "physical"]}},
                "score": {"share": "keep", "checks": {"format": "integer", "min": 0, "max": 10, "max_length": 2}},
            },
            "quality": {"on_failure": on_failure or dict.fromkeys(DIMENSIONS, "block"), "max_age": max_age},
            "retention": {"staging": "P7D", "remote": "P14D"},
        }
    )


def clean(n: int = N) -> pd.DataFrame:
    """A data set that passes all six; optional fields have some nulls (nulls fail only completeness)."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "referral_id": f"R{i + 1:06d}",
                "nhs_number": valid_nhs(i + 1)
                if i % 2
                else f"{valid_nhs(i + 1)[:3]} {valid_nhs(i + 1)[3:6]} {valid_nhs(i + 1)[6:]}",
                "forename": FORENAME,
                "date_of_birth": (date(2010, 1, 1) + timedelta(days=97 * i)).isoformat(),
                "postcode": None if i == 0 else ("s60 1ab" if i == 1 else "S65 2DF"),
                "referral_date": (DAY - timedelta(days=i % 3)).isoformat(),
                "risk_level": ["low", "medium", "high"][i % 3],
                "category": None if i == 2 else ["neglect", "physical"][i % 2],
                "score": None if i == 3 else str(i % 11),
            }
        )
    return pd.DataFrame(rows, dtype=object)


def run(
    frames: pd.DataFrame | list[pd.DataFrame], flow: Flow | None = None, report_dir: Path | None = None, **kwargs
) -> QualityOutcome:
    frames = frames if isinstance(frames, list) else [frames]
    return check_quality(
        iter(frames),
        flow or make_flow(),
        agreement_id="test-agreement",
        logical_date=DAY,
        report_dir=report_dir,
        **kwargs,
    )



def set_at(row: int, column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        df.at[row, column] = value
        return df

    return apply


def set_all(column: str, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        df[column] = value
        return df

    return apply


def several(*changes: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        for change in changes:
            df = change(df)
        return df

    return apply


DEFECTS = {
    "invalid check digit": (set_at(3, "nhs_number", BAD_NHS), {"accuracy": (1, 1)}),
    "future referral date": (set_at(4, "referral_date", (DAY + timedelta(days=5)).isoformat()), {"accuracy": (1, 1)}),
    "birth before the floor": (set_at(4, "date_of_birth", "1999-12-31"), {"accuracy": (1, 1)}),
    "bad postcode": (set_at(5, "postcode", BAD_POSTCODE), {"validity": (1, 1)}),
    "impossible date": (set_at(5, "date_of_birth", "2012-02-30"), {"validity": (1, 1)}),
    "pattern broken": (set_at(5, "referral_id", "X000006"), {"validity": (1, 1)}),
    "out-of-set value": (set_at(11, "risk_level", OUT_OF_SET), {"validity": (1, 1)}),
    "number out of range": (set_at(6, "score", "11"), {"validity": (1, 1)}),
    "not a number, too long": (set_at(6, "score", "abc"), {"validity": (2, 1)}),  # one record, two checks
    "duplicate key": (set_at(6, "referral_id", "R000002"), {"reliability": (1, 2)}),  # both copies fail
    "stale records": (set_at(7, "referral_date", (DAY - timedelta(days=60)).isoformat()), {"timeliness": (1, 1)}),
    "stale extract": (set_all("referral_date", (DAY - timedelta(days=10)).isoformat()), {"timeliness": (1, 0)}),
    "extra column": (set_all("ethnicity", EXTRA_VALUE), {"relevance": (1, 0)}),
    "missing agreed column": (lambda df: df.drop(columns=["category"]), {"relevance": (1, 0)}),
    "missing mandatory values": (
        several(set_at(2, "risk_level", None), set_at(9, "risk_level", float("nan")), set_at(10, "risk_level", "   ")),
        {"completeness": (1, 3)},
    ),
    "missing mandatory column": (
        lambda df: df.drop(columns=["risk_level"]),
        {"relevance": (1, 0), "completeness": (1, N)},
    ),
    "empty extract": (lambda df: df.iloc[0:0], {"completeness": (1, 0)}),
}


def assert_no_record_values(outcome: QualityOutcome, report_dir: Path) -> None:
    html = (report_dir / "quality_T_2026-06-02.html").read_text(encoding="utf-8")
    report_json = (report_dir / "quality_T_2026-06-02.json").read_text(encoding="utf-8")
    summary = json.dumps(outcome.summary())
    seeded = [
        BAD_NHS,
        BAD_POSTCODE,
        OUT_OF_SET,
        EXTRA_VALUE,
        FORENAME,
        "R000002",
        "R000004",
        valid_nhs(2),
        (DAY - timedelta(days=60)).isoformat(),
    ]
    for text in (html, report_json, summary):
        for value in seeded:
            assert value not in text


# The policy the report and notice tests run under: records held back for accuracy and reliability.
QUARANTINE = {**dict.fromkeys(DIMENSIONS, "block"), "accuracy": "quarantine", "reliability": "quarantine",
              "relevance": "warn"}


def html(outcome: QualityOutcome) -> str:
    return outcome.report_html.read_text(encoding="utf-8")
