"""Masking, age bands, per-domain keys, and the agreement's privacy declarations."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from transfers.agreement import FieldSpec, Flow, SharingBasis, load_config
from transfers.errors import PrivacyError
from transfers.privacy import age_band, apply_privacy, derive_key, key_fingerprint, mask, pseudonymise

ROOT = Path(__file__).resolve().parents[3]
DAY = date(2026, 11, 24)
SECRET = "a-long-enough-test-secret-0123456789"


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


def test_derived_keys_differ_by_domain_and_key_id_and_agree_on_a_shared_domain():
    a = derive_key(SECRET, domain="mash-referrals", key_id="k1")
    b = derive_key(SECRET, domain="other-agreement", key_id="k1")
    rotated = derive_key(SECRET, domain="mash-referrals", key_id="k2")
    shared = derive_key(SECRET, domain="mash-referrals", key_id="k1")
    nhs = "943 476 5919"
    assert pseudonymise(nhs, a) == pseudonymise(nhs, shared)
    assert len({pseudonymise(nhs, a), pseudonymise(nhs, b), pseudonymise(nhs, rotated)}) == 3
    assert key_fingerprint(a) != key_fingerprint(rotated)
    assert SECRET not in key_fingerprint(a)


def test_a_short_secret_is_refused_without_echoing_it():
    with pytest.raises(PrivacyError) as caught:
        derive_key("short", domain="d", key_id="k1")
    assert "short" not in str(caught.value).replace("shorter", "")


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


def test_field_spec_rejects_misplaced_options():
    with pytest.raises(ValidationError, match="bands"):
        FieldSpec(share="generalise", to="year", bands=[0, 5])
    with pytest.raises(ValidationError, match="keep_last"):
        FieldSpec(share="keep", keep_last=2)
    with pytest.raises(ValidationError, match="increasing"):
        FieldSpec(share="generalise", to="age_band", bands=[10, 5])


def test_statutory_basis_needs_a_ground_and_a_written_justification():
    with pytest.raises(ValidationError, match="legal_basis, ground, justification"):
        SharingBasis(basis="statutory")
    with pytest.raises(ValidationError, match="in words"):
        SharingBasis(basis="statutory", legal_basis="children-act-1989", ground="safeguarding", justification="yes")
    with pytest.raises(ValidationError, match="override_opt_outs only applies"):
        SharingBasis(basis="consent", override_opt_outs=True)


def _config_copy(tmp_path: Path, change) -> Path:  # noqa: ANN001
    import shutil

    import yaml

    root = tmp_path / "config"
    shutil.copytree(ROOT / "config", root)
    path = root / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def test_a_ground_outside_the_protocol_is_named_with_the_grounds_allowed(tmp_path):
    from transfers.errors import ConfigError

    root = _config_copy(tmp_path, lambda d: d["flows"][0]["consent"].update(ground="convenience"))
    with pytest.raises(ConfigError) as caught:
        load_config(root)
    message = str(caught.value.problems)
    assert "flows[0].consent.ground: 'convenience' is not an exceptional ground" in message
    assert "safeguarding" in message


def test_subject_lists_need_a_pseudonymisation_key(tmp_path):
    from transfers.errors import ConfigError

    def change(data: dict) -> None:
        del data["pseudonymisation"]
        for flow in data["flows"]:
            flow["fields"]["nhs_number"]["share"] = "keep"
        data["flows"][1]["consent"]["opt_outs"] = {"kind": "csv", "connection": "rft_exports", "path": "o.csv"}

    with pytest.raises(ConfigError, match=r"flows\[1\]\.consent: a consent register or opt-out list needs"):
        load_config(_config_copy(tmp_path, change))
