"""The agreement's ``contacts``: who is told about its flows, checked like every other key."""

from __future__ import annotations

from tests.support.config_edits import edit, problems
from transfers.agreement import load_config


def test_the_sample_lists_a_contact_for_every_alert(config_dir):
    agreement = load_config(config_dir).agreement("mash-referrals").agreement
    sender = "rotherham-childrens-services"

    assert [c.email for c in agreement.contacts_of("engineer", sender)] == ["mash-data-team@rotherham.example.org"]
    assert [c.email for c in agreement.contacts_of("data-owner", sender)] == [
        "mash-safeguarding-lead@rotherham.example.org"]
    assert {c.partner for c in agreement.contacts_of("ig")} == set(agreement.partners)


def test_a_contact_must_be_at_a_partner_of_the_agreement(config_dir):
    path = edit(config_dir, lambda d: d["contacts"].append({"partner": "dwp", "role": "ig", "email": "ig@dwp.example"}))

    message = problems(config_dir)

    assert f"{path}: contacts[8].partner: 'dwp' is not a partner of this agreement" in message


def test_a_contact_s_email_role_and_notifier_are_checked(config_dir):
    def change(d):
        d["contacts"][0]["email"] = "mash team at rotherham"
        d["contacts"][1]["role"] = "boss"
        d["contacts"][2]["notifier"] = "Not A Conn"
        d["contacts"][3]["pager"] = "07700 900000"

    path = edit(config_dir, change)
    message = problems(config_dir)

    assert f"{path}: contacts[0].email: 'mash team at rotherham' is not an email address" in message
    assert f"{path}: contacts[1].role:" in message and "'data-owner', 'ig' or 'engineer'" in message
    assert f"{path}: contacts[2].notifier: 'Not A Conn' is not a valid connection id" in message
    assert f"{path}: contacts[3].pager: unknown key" in message


def test_two_addresses_in_one_contact_are_refused(config_dir):
    edit(config_dir, lambda d: d["contacts"][0].update(email="a@example.org, b@example.org"))

    assert "is not an email address" in problems(config_dir)


def test_contacts_are_optional(config_dir):
    edit(config_dir, lambda d: d.pop("contacts"))

    assert load_config(config_dir).agreement("mash-referrals").agreement.contacts == []
