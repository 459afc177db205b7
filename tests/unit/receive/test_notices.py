"""The recipient's notice check (``transfers.receive.notices``): what a notice must say before anything is done."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from transfers.agreement import load_config, receiving_flows
from transfers.errors import ConfigError, DeliveryRejected
from transfers.ledger import Ledger
from transfers.pipeline import Resolvers
from transfers.receive.notices import _checked, _Place, apply_notices
from transfers.settings import PROJECT_ROOT, Settings

POLICE = "south-yorkshire-police"


@pytest.fixture
def place(tmp_path) -> _Place:
    config = load_config(PROJECT_ROOT / "config")
    item = next(i for i in receiving_flows(config, POLICE) if i.key == "mash-referrals.A")
    return _Place(item, POLICE, tmp_path)


def notice(place: _Place, **changes) -> bytes:
    body = {"notice": "withdrawal", "agreement": "mash-referrals", "flow": "A", "sender": place.sender,
            "recipient": POLICE, "subject": {"field": "nhs_number", "pseudonyms": ["p1"], "key_ids": []},
            "fields": [], "reference": "0123456789ab"}
    return json.dumps({**body, **changes}).encode()


def test_a_notice_for_this_flow_and_party_passes(place):
    checked = _checked(notice(place), "n.json.pgp", kind="withdrawal", tag="0123456789ab", place=place)
    assert checked["subject"]["pseudonyms"] == ["p1"]


@pytest.mark.parametrize("change, message", [
    ({"recipient": "someone-else"}, "recipient is not"),
    ({"sender": "someone-else"}, "sender is not"),
    ({"agreement": "other"}, "agreement is not"),
    ({"flow": "B"}, "flow is not"),
    ({"notice": "correction"}, "notice is not"),  # the file name says withdrawal
    ({"reference": "ffffffffffff"}, "reference is not"),
    ({"subject": {"pseudonyms": "p1"}}, "subject.pseudonyms"),
    ({"subject": {"pseudonyms": [""]}}, "subject.pseudonyms"),
    ({"fields": "postcode"}, "fields is not"),
])
def test_a_notice_that_names_anything_else_is_refused(place, change, message):
    with pytest.raises(DeliveryRejected, match=message) as caught:
        _checked(notice(place, **change), "n.json.pgp", kind="withdrawal", tag="0123456789ab", place=place)
    assert "p1" not in str(caught.value)


def test_not_json_is_refused(place):
    with pytest.raises(DeliveryRejected, match="not a JSON notice"):
        _checked(b"\xff", "n.json.pgp", kind="withdrawal", tag="0123456789ab", place=place)


def _settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", inbox_dir=tmp_path / "inbox",
                    party=POLICE)


def _no_resolvers() -> Resolvers:
    def nothing(name: str) -> str:  # with no notice waiting, no key or connection is looked at
        raise AssertionError(name)

    return Resolvers(nothing, nothing)


def test_with_no_notice_waiting_nothing_is_done_and_no_key_is_needed(tmp_path):
    flow_dir = tmp_path / "inbox" / "inbound" / "mash"
    flow_dir.mkdir(parents=True)
    (flow_dir / "mash-referrals_A_2026-11-25.manifest.json").write_text("{}")  # a delivery, not a notice
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        assert apply_notices(_settings(tmp_path), load_config(PROJECT_ROOT / "config"), ledger, _no_resolvers(),
                             me=POLICE, now=datetime(2026, 11, 27, tzinfo=UTC)) == []


def test_a_party_that_receives_nothing_is_a_configuration_error(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger, pytest.raises(ConfigError, match="receives no flow"):
        apply_notices(_settings(tmp_path), load_config(PROJECT_ROOT / "config"), ledger, _no_resolvers(),
                      me=POLICE, flow_key="mash-referrals.B")
