"""Withdrawal and correction notices: one per partner that received the subject, none to anyone else.

Each is one OpenPGP message, signed by the sending party's pinned signing key and encrypted to the
recipient: the recipient's real ``gpg`` decrypts it and reports a good signature from the sender.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE, files_containing
from tests.integration.privacy_world import (
    add_recipient,
    edit_agreement,
    flow_of,
    notices,
    payloads,
    pseudonyms,
    sent,
    write_ed,
    write_list,
)
from transfers.devkit import synthetic
from transfers.devkit.gpg import signed_by
from transfers.errors import KeyRefused, SecretMissing
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

SYP, HEALTH, CS = "inbound/mash", "inbound/mash-health", "inbound/ed-attendances"


def notice_signers(world, gpg_partner, remote_dir: str) -> list[str | None]:
    """For each notice in a recipient's directory, whose good signature gpg reports on decrypting it."""
    return [signed_by(gpg_partner.home.decrypt_with_status(p)[1])
            for p in world.delivered(remote_dir) if "-notice_" in p.name]


@pytest.fixture
def shared_twice(world, sshd, gpg_partner):
    """Flow A's referrals sent to the police and to the trust; flow B's (other children) to Children's Services."""
    add_recipient(world, sshd, gpg_partner, "A", "rotherham-nhs-ft", "rft_sftp", HEALTH)
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    run_flow(world.run("mash-referrals.B"), world.resolvers())
    return list(synthetic.referrals(40, LOGICAL_DATE)["nhs_number"])


def test_withdrawal_sends_one_notice_to_each_partner_that_received_the_subject_and_none_to_others(
        world, gpg_partner, cli, shared_twice):
    subject = shared_twice[0]
    printed = f"{subject[:3]} {subject[3:6]} {subject[6:]}"  # as a caseworker might type it

    result = cli("consent", "withdraw", printed)

    assert result.exit_code == 0, result.output
    pseudonym = pseudonyms(world, "mash-referrals.A", [subject])[subject]
    for remote_dir in (SYP, HEALTH):
        [notice] = notices(world, gpg_partner, remote_dir)
        assert notice["notice"] == "withdrawal"
        assert notice["subject"]["pseudonyms"] == [pseudonym]
        assert notice["subject"]["key_ids"] == ["mash-2026-04"]
        assert notice["disclosures"] == [LOGICAL_DATE.isoformat()]
        # The pseudonym in the notice is the one this partner was sent.
        assert pseudonym in set(sent(world, gpg_partner, remote_dir)["nhs_number"])
    assert notices(world, gpg_partner, CS) == []
    entries = payloads(world, "notice")
    assert len(entries) == 2 and {e["notice"] for e in entries} == {"withdrawal"}
    assert subject not in result.output and printed not in result.output
    assert files_containing(world.settings.home, [subject, printed]) == []

    again = cli("consent", "withdraw", subject)
    assert again.exit_code == 0, again.output
    assert again.output.count("already-sent") == 2
    assert len(payloads(world, "notice")) == 2
    assert all(len(notices(world, gpg_partner, d)) == 1 for d in (SYP, HEALTH))


def test_withdrawing_a_subject_nobody_received_sends_nothing(world, gpg_partner, cli, shared_twice):
    result = cli("consent", "withdraw", "-", stdin="9990000018\n")
    assert result.exit_code == 0, result.output
    assert "no partner has received this subject" in result.output
    assert payloads(world, "notice") == []
    assert all(notices(world, gpg_partner, d) == [] for d in (SYP, HEALTH, CS))


def test_correction_notices_name_the_fields_and_are_sent_once_per_reference(world, gpg_partner, cli, shared_twice):
    subject = shared_twice[1]
    first = cli("correct", subject, "--fields", "risk_level, category", "--reference", "RECT-1")
    again = cli("correct", subject, "--fields", "risk_level,category", "--reference", "RECT-1")
    other = cli("correct", subject, "--fields", "postcode", "--reference", "RECT-2")

    assert first.exit_code == again.exit_code == other.exit_code == 0, first.output + other.output
    for remote_dir in (SYP, HEALTH):
        sent_notices = sorted(notices(world, gpg_partner, remote_dir), key=lambda n: n["fields"])
        assert [n["notice"] for n in sent_notices] == ["correction", "correction"]
        assert [n["fields"] for n in sent_notices] == [["postcode"], ["risk_level", "category"]]
    assert notices(world, gpg_partner, CS) == []
    assert len(payloads(world, "notice")) == 4


def test_the_nightly_run_tells_earlier_recipients_when_the_register_gains_a_withdrawal(world, gpg_partner):
    day1 = LOGICAL_DATE - timedelta(days=1)
    write_ed(world, synthetic.ed_attendances(30, day1), day1)
    run_flow(world.run("mash-referrals.B", day1), world.resolvers())
    numbers = [n.replace(" ", "") for n in synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"]]

    register = write_list(world, "consent.csv", [{"subject": numbers[7], "status": "withdrawn",
                                                  "effective": "2026-01-01"}])
    edit_agreement(world, lambda d: flow_of(d, "B")["consent"].update(
        consent_register={"kind": "csv", "connection": "rft_exports", "path": register}))
    results = run_flow(world.run("mash-referrals.B"), world.resolvers())

    assert results["notify"] == {"sent": 1, "already_sent": 0}
    [notice] = notices(world, gpg_partner, CS)
    pseudonym = pseudonyms(world, "mash-referrals.B", [numbers[7]])[numbers[7]]
    assert notice["notice"] == "withdrawal" and notice["subject"]["pseudonyms"] == [pseudonym]
    assert notice["disclosures"] == [day1.isoformat()]  # today's delivery left the subject out
    today = [f for f in world.delivered(CS) if LOGICAL_DATE.isoformat() in f.name and "notice" not in f.name]
    from tests.integration.conftest import read_delivery

    assert pseudonym not in set(read_delivery(gpg_partner, today[0])["nhs_number"])
    # Another night with the withdrawal still in the register: already told, nothing sent again.
    day3 = day1 - timedelta(days=1)
    write_ed(world, synthetic.ed_attendances(30, day3), day3)
    assert run_flow(world.run("mash-referrals.B", day3), world.resolvers())["notify"] == {"sent": 0,
                                                                                          "already_sent": 1}
    assert len(payloads(world, "notice")) == 1 and len(notices(world, gpg_partner, CS)) == 1


def test_run_from_the_cli_reports_the_privacy_outcome(world, cli):
    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "privacy:" in line]
    assert "shared without consent" in line
    k = payloads(world, "privacy", "mash-referrals.A")[0]["k"]["k"]
    assert f"k={k} on date_of_birth, postcode" in line


def test_each_notice_decrypts_with_a_good_signature_from_the_senders_pinned_key(world, gpg_partner, gpg_sender, cli,
                                                                                  shared_twice):
    pinned = world.config.protocol.signatory("rotherham-childrens-services").signing_fingerprint  # flow A's sender
    withdrawn = cli("consent", "withdraw", shared_twice[0])
    corrected = cli("correct", shared_twice[1], "--fields", "risk_level", "--reference", "RECT-9")

    assert withdrawn.exit_code == corrected.exit_code == 0, withdrawn.output + corrected.output
    for remote_dir in (SYP, HEALTH):
        assert notice_signers(world, gpg_partner, remote_dir) == [gpg_sender.fingerprint] * 2
        assert {n["sender_signing_fingerprint"] for n in notices(world, gpg_partner, remote_dir)} == {pinned}
    assert pinned == gpg_sender.fingerprint
    # One message (signed, then encrypted): no detached signature travels beside a notice.
    assert not [p for d in (SYP, HEALTH) for p in world.delivered(d) if p.name.endswith(".asc") and "notice" in p.name]


def test_the_nightly_runs_notice_is_signed_by_its_flows_sender(world, gpg_partner, gpg_sender):
    day1 = LOGICAL_DATE - timedelta(days=1)
    write_ed(world, synthetic.ed_attendances(30, day1), day1)
    run_flow(world.run("mash-referrals.B", day1), world.resolvers())
    numbers = [n.replace(" ", "") for n in synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"]]
    register = write_list(world, "consent.csv", [{"subject": numbers[7], "status": "withdrawn",
                                                  "effective": "2026-01-01"}])
    edit_agreement(world, lambda d: flow_of(d, "B")["consent"].update(
        consent_register={"kind": "csv", "connection": "rft_exports", "path": register}))

    assert run_flow(world.run("mash-referrals.B"), world.resolvers())["notify"] == {"sent": 1, "already_sent": 0}
    pinned = world.config.protocol.signatory(world.config.flow("mash-referrals.B").flow.from_).signing_fingerprint
    assert notice_signers(world, gpg_partner, CS) == [pinned] == [gpg_sender.fingerprint]


@pytest.mark.parametrize("command", [("consent", "withdraw"), ("correct",)])
def test_a_missing_signing_secret_sends_no_notice_and_names_the_secret(world, gpg_partner, cli, shared_twice,
                                                                        command):
    subject = shared_twice[0]
    extra = ("--fields", "risk_level", "--reference", "RECT-3") if command == ("correct",) else ()
    secret = world.secrets.pop("transfers_signing_key")

    result = cli(*command, subject, *extra)

    assert result.exit_code != 0
    assert "transfers_signing_key" in result.output
    assert "PRIVATE KEY" not in result.output
    assert all(notices(world, gpg_partner, d) == [] for d in (SYP, HEALTH, CS))
    assert payloads(world, "notice") == []
    assert not list((world.settings.home).rglob("*-notice_*"))  # nothing made to be sent later unsigned

    world.secrets["transfers_signing_key"] = secret  # set it, and the same command sends every notice, signed
    again = cli(*command, subject, *extra)
    assert again.exit_code == 0, again.output
    assert all(len(notice_signers(world, gpg_partner, d)) == 1 for d in (SYP, HEALTH))
    assert len(payloads(world, "notice")) == 2


def test_send_notices_without_the_secret_or_with_another_key_sends_nothing(world, gpg_partner, gpg_home, gpg_sender,
                                                                           shared_twice):
    from transfers.cli.privacy import subject_lookups
    from transfers.notices import send_notices

    resolvers = world.resolvers()
    lookups = subject_lookups(world.config, shared_twice[0], resolvers.secret)

    def send():
        with world.settings.open_ledger() as ledger:
            return send_notices(world.settings, world.config, ledger, resolvers.connection, kind="withdrawal",
                                lookups=lookups, occasion="withdrawn", secret=resolvers.secret)

    secret = world.secrets.pop("transfers_signing_key")
    with pytest.raises(SecretMissing, match="transfers_signing_key"):
        send()
    other = gpg_home.generate_key("Someone else <else@example.invalid>", algo="cv25519", encryption_subkey=False)
    world.secrets["transfers_signing_key"] = gpg_home.export_secret(other)
    with pytest.raises(KeyRefused) as refused:
        send()
    assert other in str(refused.value) and gpg_sender.fingerprint in str(refused.value)
    assert all(notices(world, gpg_partner, d) == [] for d in (SYP, HEALTH))
    assert payloads(world, "notice") == []

    world.secrets["transfers_signing_key"] = secret
    assert sorted(r.status for r in send()) == ["sent", "sent"]
