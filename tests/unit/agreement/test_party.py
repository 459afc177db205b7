"""Which flows a party sends and receives, from the sample agreement every partner holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfers.agreement import load_config
from transfers.agreement.party import receive_dag_id, receiving_flows, sending_flows, sides
from transfers.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config")


def test_a_party_sends_the_flows_from_it_and_receives_those_to_it_with_its_own_recipient_entry(config):
    assert [ref.key for ref in sending_flows(config, "rotherham-childrens-services")] == ["mash-referrals.A"]
    (inbound,) = receiving_flows(config, "rotherham-childrens-services")
    assert inbound.key == "mash-referrals.B"
    assert inbound.recipient.partner == "rotherham-childrens-services"
    assert inbound.recipient.path == "inbound/ed-attendances"

    assert sending_flows(config, "south-yorkshire-police") == []
    assert [i.key for i in receiving_flows(config, "south-yorkshire-police")] == ["mash-referrals.A"]
    assert [ref.key for ref in sending_flows(config, "rotherham-nhs-ft")] == ["mash-referrals.B"]
    assert receiving_flows(config, "rotherham-nhs-ft") == []


def test_no_party_sends_every_flow_and_receives_none(config):
    assert [ref.key for ref in sending_flows(config, None)] == [ref.key for ref in config.flows()]
    assert receiving_flows(config, None) == []
    assert sides(config, None).warning is None


def test_an_unknown_party_is_a_config_error_naming_it_and_listing_the_signatories(config):
    for lookup in (sending_flows, receiving_flows, sides):
        with pytest.raises(ConfigError) as caught:
            lookup(config, "south-yorks-police")
        message = str(caught.value)
        assert "TRANSFERS_PARTY: 'south-yorks-police' is not a Tier 1 signatory" in message
        assert "south-yorkshire-police" in message and "rotherham-nhs-ft" in message


def test_a_signatory_in_no_agreement_has_no_flows_and_a_warning_not_an_error(config):
    found = sides(config, "dwp")

    assert found.sending == () and found.receiving == ()
    assert found.warning is not None
    assert "'dwp': nothing to send or receive" in found.warning and "partner of no agreement" in found.warning


def test_a_partner_with_no_flow_of_its_own_is_told_so(config, tmp_path):
    import shutil

    import yaml

    shutil.copytree(ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"] = [f for f in data["flows"] if f["id"] == "A"]  # the trust is still a partner, sends nothing
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    found = sides(load_config(tmp_path / "config"), "rotherham-nhs-ft")

    assert found.warning is not None and "partner of mash-referrals but no flow there" in found.warning


def test_directions_say_how_the_party_takes_part_in_each_flow(config):
    cs, police = sides(config, "rotherham-childrens-services"), sides(config, "south-yorkshire-police")
    a, b = config.flow("mash-referrals.A"), config.flow("mash-referrals.B")

    assert (cs.directions(a), cs.directions(b)) == (["send"], ["receive"])
    assert (police.directions(a), police.directions(b)) == (["receive"], [])
    assert sides(config, None).directions(b) == ["send"]


def test_the_receive_dag_id_is_the_send_dag_id_after_receive_(config):
    assert receive_dag_id(config.flow("mash-referrals.B")) == "receive_mash-referrals.B"
