"""The minimise/pseudonymise/generalise/mask transforms of a batch: allow-list, pseudonyms applied, dates,
postcodes, age bands and masks generalised, counts without values, no leaks."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from transfers.agreement import Flow, load_config
from transfers.errors import PrivacyError
from transfers.privacy import (
    age_band,
    apply_privacy,
    generalise_date,
    generalise_postcode,
    mask,
    pseudonymise,
)
from transfers.privacy.pseudonyms import normalise_all

ROOT = Path(__file__).resolve().parents[3]
DAY = date(2026, 11, 24)
KEY = b"k" * 32
OTHER_KEY = b"o" * 32


@pytest.fixture(scope="module")
def flow_a() -> Flow:
    return load_config(ROOT / "config").flow("mash-referrals.A").flow


@pytest.fixture(scope="module")
def flow_b() -> Flow:
    return load_config(ROOT / "config").flow("mash-referrals.B").flow


def referrals() -> pd.DataFrame:
    rows = [
        {
            "referral_id": "R000001",
            "nhs_number": "943 476 5919",
            "forename": "Amelia",
            "surname": "Smith",
            "date_of_birth": "2012-05-17",
            "postcode": "s60 2ab",
            "referral_date": "2026-11-24",
            "risk_level": "high",
            "category": "neglect",
            "gp_notes": "seen at the walk-in centre",  # a column the agreement never mentions
        },
        {
            "referral_id": "R000002",
            "nhs_number": "9434765919",
            "forename": "Oliver",
            "surname": "Jones",
            "date_of_birth": "2014-01-02T08:30:00",
            "postcode": "S61  1XY",
            "referral_date": "2026-11-24",
            "risk_level": "low",
            "category": None,
            "gp_notes": None,
        },
        {
            "referral_id": "R000003",
            "nhs_number": None,
            "forename": "Isla",
            "surname": "Taylor",
            "date_of_birth": "not a date",
            "postcode": "ROTHERHAM",
            "referral_date": "2026-11-24",
            "risk_level": "medium",
            "category": "physical",
            "gp_notes": "x",
        },
    ]
    return pd.DataFrame(rows, dtype=object)


# --------------------------------------------------------------------------- allow-list


def test_only_shared_fields_come_out_in_the_agreements_order(flow_a):
    batch = referrals()[list(reversed(referrals().columns))]  # source order must not matter

    safe, stats = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)

    assert list(safe.columns) == flow_a.shared_fields
    assert list(safe.columns) == [
        "referral_id",
        "nhs_number",
        "date_of_birth",
        "postcode",
        "referral_date",
        "risk_level",
        "category",
    ]
    assert set(stats.fields_dropped) == {"forename", "surname", "gp_notes"}
    assert stats.rows_in == stats.rows_out == 3


def test_dropped_and_unknown_columns_leave_no_trace_in_the_output(flow_a):
    safe, _ = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)

    text = safe.to_csv(index=False)
    for clear in ("Amelia", "Smith", "Oliver", "Jones", "walk-in", "gp_notes", "forename", "surname"):
        assert clear not in text


def test_kept_fields_are_unchanged_and_nulls_stay_null(flow_a):
    batch = referrals()
    batch.loc[2, "category"] = float("nan")

    safe, _ = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)

    assert safe["referral_id"].tolist() == ["R000001", "R000002", "R000003"]
    assert safe["risk_level"].tolist() == ["high", "low", "medium"]
    assert safe["category"].tolist() == ["neglect", None, None]


def test_a_shared_field_missing_from_the_batch_names_flow_and_field(flow_a):
    batch = referrals().drop(columns=["postcode"])

    with pytest.raises(PrivacyError, match=r"flow A: .*'postcode'"):
        apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)


def test_a_dropped_field_may_be_absent(flow_a):
    batch = referrals().drop(columns=["forename", "surname"])

    safe, stats = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)

    assert list(safe.columns) == flow_a.shared_fields
    assert stats.fields_dropped == ["gp_notes"]


def test_an_empty_batch_keeps_the_shared_columns(flow_a):
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in referrals().columns})

    safe, stats = apply_privacy(empty, flow_a, key=KEY, logical_date=DAY)

    assert list(safe.columns) == flow_a.shared_fields
    assert len(safe) == 0 and stats.rows_out == 0


# --------------------------------------------------------------------------- pseudonyms


def test_batch_pseudonyms_match_across_forms_and_never_show_the_identifier(flow_a):
    safe, stats = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)

    numbers = safe["nhs_number"].tolist()
    assert numbers[0] == numbers[1] == pseudonymise("9434765919", KEY)
    assert numbers[2] is None  # a missing identifier stays missing, not the pseudonym of ""
    text = safe.to_csv(index=False)
    assert "9434765919" not in text and "943 476 5919" not in text
    assert stats.pseudonymised == {"nhs_number": 2}


def test_batch_pseudonyms_are_stable_across_runs_and_keys(flow_a):
    first, _ = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)
    again, _ = apply_privacy(referrals(), flow_a, key=KEY, logical_date=date(2026, 11, 25))
    rotated, _ = apply_privacy(referrals(), flow_a, key=OTHER_KEY, logical_date=DAY)

    assert first["nhs_number"].tolist() == again["nhs_number"].tolist()
    assert first["nhs_number"][0] != rotated["nhs_number"][0]


def test_blank_identifiers_stay_null(flow_a):
    batch = referrals()
    batch.loc[0, "nhs_number"] = "   "

    safe, stats = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)

    assert safe["nhs_number"][0] is None
    assert stats.pseudonymised == {"nhs_number": 1}


@pytest.mark.parametrize("key", [None, b""])
def test_missing_key_is_refused_naming_the_secret_not_the_key(flow_a, key):
    with pytest.raises(PrivacyError, match=r"flow A: .*'nhs_number'.*key is missing.*key_secret") as caught:
        apply_privacy(referrals(), flow_a, key=key, logical_date=DAY)
    assert "943" not in str(caught.value)


def test_missing_key_is_refused_even_for_an_empty_batch(flow_a):
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in referrals().columns})
    with pytest.raises(PrivacyError, match="key"):
        apply_privacy(empty, flow_a, key=None, logical_date=DAY)


def test_a_short_key_is_refused_without_showing_it(flow_a):
    with pytest.raises(PrivacyError, match="shorter than 16 bytes") as caught:
        apply_privacy(referrals(), flow_a, key=b"secret", logical_date=DAY)
    assert "secret'" not in str(caught.value) and "b'secret" not in str(caught.value)
    with pytest.raises(PrivacyError):
        pseudonymise("9434765919", b"secret")


def test_no_key_is_needed_when_nothing_is_pseudonymised(flow_a):
    fields = {name: spec for name, spec in flow_a.fields.items() if spec.share != "pseudonymise"}
    flow = flow_a.model_copy(update={"fields": fields})

    safe, _ = apply_privacy(referrals(), flow, key=None, logical_date=DAY)

    assert "nhs_number" not in safe.columns


# --------------------------------------------------------------------------- generalisation


@pytest.mark.parametrize(
    ("value", "year", "month"),
    [
        ("2012-05-17", "2012", "2012-05"),
        ("2012-05-17T08:30:00", "2012", "2012-05"),
        (" 2012-05-17 ", "2012", "2012-05"),
        ("2000-02-29", "2000", "2000-02"),
        (date(2012, 5, 17), "2012", "2012-05"),
    ],
)
def test_dates_generalise_to_year_or_month(value, year, month):
    assert generalise_date(value, "year") == year
    assert generalise_date(value, "month") == month


@pytest.mark.parametrize(
    "value",
    ["not a date", "17/05/2012", "2012-13-01", "2011-02-29", "2012-05", "20120517", "2012-05-17Tnoon", "", None, 3.5],
)
def test_dates_that_cannot_be_generalised_become_null(value):
    assert generalise_date(value, "year") is None
    assert generalise_date(value, "month") is None


@pytest.mark.parametrize(
    ("value", "district", "sector"),
    [
        ("S60 2AB", "S60", "S60 2"),
        ("s602ab", "S60", "S60 2"),
        ("  s60   2ab ", "S60", "S60 2"),
        ("SW1A 1AA", "SW1A", "SW1A 1"),
        ("M1 1AE", "M1", "M1 1"),
        ("DN55 1PT", "DN55", "DN55 1"),
    ],
)
def test_postcodes_generalise_to_district_or_sector(value, district, sector):
    assert generalise_postcode(value, "district") == district
    assert generalise_postcode(value, "sector") == sector


def test_an_outward_code_alone_is_already_a_district_but_not_a_sector():
    assert generalise_postcode("s60", "district") == "S60"
    assert generalise_postcode("S60", "sector") is None


@pytest.mark.parametrize(
    "value", ["ROTHERHAM", "S60 2A", "S60 2", "S6 0", "S602", "60 2AB", "S60 2AB X", "12345", "", None, 60]
)
def test_postcodes_that_cannot_be_generalised_become_null(value):
    # Partial postcodes are ambiguous once spaces go ("S6 0" is not district "S60"): null, never a guess.
    assert generalise_postcode(value, "sector") is None
    assert generalise_postcode(value, "district") is None


def test_unknown_generalisation_levels_are_refused():
    with pytest.raises(ValueError):
        generalise_date("2012-05-17", "district")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        generalise_postcode("S60 2AB", "year")  # type: ignore[arg-type]


def test_batch_generalises_and_nulls_what_it_cannot_and_counts_it(flow_a):
    safe, stats = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)

    assert safe["date_of_birth"].tolist() == ["2012", "2014", None]
    assert safe["postcode"].tolist() == ["S60", "S61", None]
    # The values that could not be generalised never pass through in clear.
    text = safe.to_csv(index=False)
    assert "not a date" not in text and "ROTHERHAM" not in text
    assert stats.generalised == {"date_of_birth": 2, "postcode": 2}
    assert stats.nulled["date_of_birth"] == 1 and stats.nulled["postcode"] == 1


def test_generalisation_levels_follow_the_agreement(flow_a):
    fields = dict(flow_a.fields)
    fields["date_of_birth"] = fields["date_of_birth"].model_copy(update={"to": "month"})
    fields["postcode"] = fields["postcode"].model_copy(update={"to": "sector"})
    flow = flow_a.model_copy(update={"fields": fields})

    safe, _ = apply_privacy(referrals(), flow, key=KEY, logical_date=DAY)

    assert safe["date_of_birth"].tolist() == ["2012-05", "2014-01", None]
    assert safe["postcode"].tolist() == ["S60 2", "S61 1", None]


def test_flow_b_datetimes_and_printed_nhs_numbers(flow_b):
    batch = pd.DataFrame(
        [
            {
                "attendance_id": "E1",
                "nhs_number": "999 123 4567",
                "date_of_birth": "2015-03-04",
                "postcode": "S65 1AA",
                "arrived_at": "2026-11-24T01:02:03",
                "presenting_complaint": "burn",
                "safeguarding_flag": "Y",
            }
        ],
        dtype=object,
    )

    safe, stats = apply_privacy(batch, flow_b, key=KEY, logical_date=DAY)

    assert safe.iloc[0].to_dict() == {
        "attendance_id": "E1",
        "nhs_number": pseudonymise("9991234567", KEY),
        "date_of_birth": "2015",
        "postcode": "S65",
        "arrived_at": "2026-11-24T01:02:03",
        "safeguarding_flag": "Y",
    }
    assert stats.fields_dropped == ["presenting_complaint"]


# --------------------------------------------------------------------------- stats


def test_stats_are_small_json_and_hold_no_values(flow_a):
    _, stats = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)

    text = json.dumps(stats.to_dict())
    for value in ("9434765919", "943 476 5919", "2012-05-17", "S60 2AB", "s60 2ab", "Amelia", "ROTHERHAM", "R000001"):
        assert value not in text
    assert stats.to_dict()["logical_date"] == "2026-11-24"
    assert stats.flow == "A"


def test_stats_of_batches_add_up(flow_a):
    _, first = apply_privacy(referrals(), flow_a, key=KEY, logical_date=DAY)
    _, second = apply_privacy(referrals().iloc[:1], flow_a, key=KEY, logical_date=DAY)

    total = first.merge(second)

    assert total.rows_in == total.rows_out == 4
    assert total.pseudonymised == {"nhs_number": 3}
    assert total.generalised == {"date_of_birth": 3, "postcode": 3}
    assert total.nulled == {"nhs_number": 0, "date_of_birth": 1, "postcode": 1}


# --------------------------------------------------------------------------- age bands and masks


def test_age_band_is_the_age_at_the_logical_date_not_today():
    # 10th birthday is on 2026-11-25: still 9 on the logical date.
    assert age_band("2016-11-25", DAY) == "5-9"
    assert age_band("2016-11-24", DAY) == "10-15"
    assert age_band("2008-01-01", DAY) == "18+"
    assert age_band("2026-06-01", DAY) == "0-4"
    assert age_band("2016-11-24", DAY, [0, 12]) == "0-11"


def test_age_band_never_passes_a_bad_or_future_date_through():
    assert age_band("not a date", DAY) is None
    assert age_band("2027-01-01", DAY) is None
    assert age_band(None, DAY) is None
    assert age_band("2020-01-01", DAY, [10, 20]) is None  # younger than the first band


def test_mask_hides_all_but_at_most_a_quarter_of_the_value():
    assert mask("07700900123") == "*" * 11
    assert mask("07700900123", keep_last=2) == "*********23"
    assert mask("07700900123", keep_last=4) == "*********23"  # capped at a quarter
    assert mask("abc", keep_last=3) == "***"  # 3 of 3 would reveal everything
    assert mask(" ") is None and mask(None) is None


def _flow(fields: dict) -> Flow:
    base = load_config(ROOT / "config").flow("mash-referrals.A").flow
    data = base.model_dump(by_alias=True)
    data["fields"] = fields
    data["record_key"] = None
    data["disclosure_risk"] = None  # the sample's quasi-identifiers are not among these fields
    data["subject"] = next(iter(fields))
    return Flow.model_validate(data)


def test_apply_privacy_masks_and_bands_as_declared():
    flow = _flow({
        "nhs_number": {"share": "pseudonymise"},
        "phone": {"share": "mask", "keep_last": 2},
        "date_of_birth": {"share": "generalise", "to": "age_band", "bands": [0, 10, 18]},
    })
    batch = pd.DataFrame([{"nhs_number": "9434765919", "phone": "07700900123", "date_of_birth": "2012-05-17",
                           "extra": "x"}], dtype=object)
    out, stats = apply_privacy(batch, flow, key=b"k" * 32, logical_date=DAY)
    assert out.to_dict("records") == [{"nhs_number": pseudonymise("9434765919", b"k" * 32),
                                       "phone": "*********23", "date_of_birth": "10-17"}]
    assert stats.masked == {"phone": 1} and stats.generalised == {"date_of_birth": 1}


def _one_value_at_a_time(batch: pd.DataFrame, flow: Flow) -> dict[str, list]:
    """The output as the single-value functions give it, row by row: what batches were before issue 14."""
    out: dict[str, list] = {}
    for name, spec in flow.fields.items():
        values = batch[name].tolist()
        blank = [v is None or v != v or (isinstance(v, str) and not v.strip()) for v in values]
        if spec.share == "keep":
            out[name] = [None if b and not isinstance(v, str) else v for v, b in zip(values, blank, strict=True)]
        elif spec.share == "pseudonymise":
            out[name] = [None if b else pseudonymise(v, KEY) for v, b in zip(values, blank, strict=True)]
        elif spec.share == "mask":
            out[name] = [mask(v, spec.keep_last) for v in values]
        elif spec.share == "generalise":
            if spec.to in ("year", "month"):
                out[name] = [None if b else generalise_date(v, spec.to) for v, b in zip(values, blank, strict=True)]
            elif spec.to in ("district", "sector"):
                out[name] = [None if b else generalise_postcode(v, spec.to) for v, b in zip(values, blank, strict=True)]
            else:
                out[name] = [None if b else age_band(v, DAY, spec.bands) for v, b in zip(values, blank, strict=True)]
    return out


@pytest.mark.parametrize("which", ["a", "b"])
def test_a_seeded_batch_comes_out_exactly_as_one_value_at_a_time(flow_a, flow_b, which):
    import random

    from transfers.devkit import synthetic

    flow = flow_a if which == "a" else flow_b
    batch = (synthetic.referrals if which == "a" else synthetic.ed_attendances)(3000, DAY, seed=14)
    rng = random.Random(14)
    for name in batch.columns:  # blanks, whitespace and junk among the real values
        for row in rng.sample(range(len(batch)), 60):
            batch.at[row, name] = rng.choice([None, "", "   ", "not a value", " S60 2AB ", "2012-02-30", "2012-05-01T25:00"])
    safe, stats = apply_privacy(batch, flow, key=KEY, logical_date=DAY)
    expected = _one_value_at_a_time(batch, flow)
    assert {name: safe[name].tolist() for name in safe.columns} == {n: expected[n] for n in safe.columns}
    for name, done in stats.generalised.items():
        assert done == sum(v is not None for v in expected[name])


def test_normal_forms_given_by_the_caller_give_the_same_pseudonyms(flow_a):
    batch = referrals()
    plain, _ = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)
    given, _ = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY,
                             normalised={"nhs_number": normalise_all(batch["nhs_number"])})

    assert given.equals(plain)


def test_normal_forms_made_for_other_rows_are_not_used(flow_a):
    batch = referrals()
    other = normalise_all(batch["nhs_number"]).set_axis([7, 8, 9])
    other[:] = ["X", "Y", "Z"]  # would give other pseudonyms if they were used
    plain, _ = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY)
    given, _ = apply_privacy(batch, flow_a, key=KEY, logical_date=DAY, normalised={"nhs_number": other})

    assert given.equals(plain)
