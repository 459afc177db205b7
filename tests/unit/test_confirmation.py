"""The confirmation document: written and parsed back the same, anything else refused with the file named."""

from __future__ import annotations

import json

import pytest

from transfers.confirmation import NOTICE_NAME, Confirmation, confirmation_name, notice_name
from transfers.errors import ReceiptInvalid


def sample(**changes) -> Confirmation:
    fields = {"reference": "0123456789ab", "notice": "withdrawal", "agreement": "mash-referrals", "flow": "A",
              "sender": "cs", "recipient": "syp", "rows": 2, "tables": ("received_mash_referrals_a",),
              "applied_at": "2026-11-27T09:00:00+00:00", "recipient_ledger_head": {"seq": 3, "hash": "ab" * 32},
              "signer_fingerprint": "5" * 40}
    return Confirmation(**{**fields, **changes})


def test_a_confirmation_round_trips_with_format_first():
    data = sample().to_bytes()
    assert list(json.loads(data))[0] == "format"
    assert Confirmation.parse(data, where="c.json") == sample()


@pytest.mark.parametrize("change, message", [
    ({"format": 2}, "format 2"),
    ({"notice": "erasure"}, "neither withdrawal nor correction"),
    ({"rows": -1}, "rows is not a count"),
    ({"rows": "2"}, "rows is not a count"),
])
def test_a_malformed_confirmation_is_refused_naming_the_file(change, message):
    raw = {**json.loads(sample().to_bytes()), **change}
    with pytest.raises(ReceiptInvalid, match=message) as caught:
        Confirmation.parse(json.dumps(raw).encode(), where="receipts/c.json")
    assert "receipts/c.json" in str(caught.value)


def test_a_missing_key_is_refused():
    raw = json.loads(sample().to_bytes())
    del raw["reference"]
    with pytest.raises(ReceiptInvalid, match="missing or malformed"):
        Confirmation.parse(json.dumps(raw).encode(), where="c.json")


def test_names_at_both_ends_agree_with_the_notices_name():
    name = notice_name("mash-referrals", "A", "correction", "0123456789ab")
    found = NOTICE_NAME.match(name)
    assert found is not None and (found["prefix"], found["kind"], found["tag"]) == ("mash-referrals_A", "correction",
                                                                                    "0123456789ab")
    assert confirmation_name("mash-referrals", "A", "correction", "0123456789ab") == \
        "mash-referrals_A_correction-confirmation_0123456789ab.json"
    assert NOTICE_NAME.match("mash-referrals_A_2026-11-25.part-0001.csv.pgp") is None
