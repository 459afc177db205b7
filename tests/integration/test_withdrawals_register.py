"""``transfers consent withdraw`` stops the next disclosure: the sender's withdrawals register, end to end.

Real parts: the deliveries land on the private ``sshd`` and are decrypted by
the real ``gpg``; flow A's source is the throwaway PostgreSQL database.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE, files_containing, read_delivery
from tests.integration.privacy_world import edit_agreement, flow_of, notices, payloads, pseudonyms, sent, write_ed
from transfers.devkit import synthetic
from transfers.ledger.records import Incident, Notice
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

CS, SYP = "inbound/ed-attendances", "inbound/mash"


def _delivered_on(world, gpg_partner, remote_dir: str, day) -> list:
    [path] = [p for p in world.delivered(remote_dir) if day.isoformat() in p.name and "notice" not in p.name]
    return read_delivery(gpg_partner, path)


def test_a_withdrawal_stops_the_next_nights_disclosure_counts_it_and_shows_in_history(world, gpg_partner, cli):
    night1 = LOGICAL_DATE - timedelta(days=1)
    write_ed(world, synthetic.ed_attendances(30, night1), night1)
    run_flow(world.run("mash-referrals.B", night1), world.resolvers())
    numbers = [n.replace(" ", "") for n in synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"]]
    subject = numbers[4]
    pseudonym = pseudonyms(world, "mash-referrals.B", [subject])[subject]
    assert pseudonym in set(_delivered_on(world, gpg_partner, CS, night1)["nhs_number"])

    withdrawn = cli("consent", "withdraw", subject)

    assert withdrawn.exit_code == 0, withdrawn.output
    assert ("mash-referrals: withdrawal recorded in the withdrawals register; later runs of its flows exclude "
            "this subject") in withdrawn.output
    assert "withdrawal notice sent" in withdrawn.output
    # The trust's own register (written by the world, nobody in it) has not caught up: the next night
    # must exclude the subject anyway.
    tonight = cli("run", "mash-referrals.B", "--date", LOGICAL_DATE.isoformat())

    assert tonight.exit_code == 0, tonight.output
    assert "excluded 1 withdrawn (notified)" in tonight.output
    frame = _delivered_on(world, gpg_partner, CS, LOGICAL_DATE)
    assert pseudonym not in set(frame["nhs_number"])
    assert len(frame) == 29
    assert payloads(world, "privacy", "mash-referrals.B")[-1]["excluded"] == {"withdrawn_notified": 1}
    # Told once, at withdrawal; the night's run does not tell the partner again.
    assert len(notices(world, gpg_partner, CS)) == 1

    history = cli("subject", "history", subject)

    assert history.exit_code == 0, history.output
    # when (date and time), what, flow, logical date, ...: the terminal turns the tabs into spaces.
    lines = [line.split() for line in history.stdout.splitlines()[1:]]
    assert [cells[2] for cells in lines] == ["disclosed", "withdrawn", "notice", "excluded"]
    assert lines[-1][3:5] == ["mash-referrals.B", LOGICAL_DATE.isoformat()]
    assert " ".join(lines[-1][6:8]) == "withdrawn (notified)"
    assert "recorded in the withdrawals register" in " ".join(lines[1])
    # The register holds keyed lookups only: the identifier is nowhere the sender keeps.
    assert files_containing(world.settings.home, [subject, f"{subject[:3]} {subject[3:6]} {subject[6:]}"]) == []

    again = cli("consent", "withdraw", subject)
    assert again.exit_code == 0, again.output
    assert "mash-referrals: withdrawal already recorded in the withdrawals register" in again.output
    # Met again after its notice went: a security incident, once per subject per notice (not once a night),
    # naming the notice, never the subject.
    night3 = LOGICAL_DATE + timedelta(days=1)
    write_ed(world, synthetic.ed_attendances(30, LOGICAL_DATE), night3)
    assert cli("run", "mash-referrals.B", "--date", night3.isoformat()).exit_code == 0
    with world.settings.open_ledger() as ledger:
        [incident] = list(ledger.records(Incident))
        [notice] = list(ledger.records(Notice))
    assert (incident.what, incident.flow, incident.recipient) == ("subject-after-withdrawal", "mash-referrals.B",
                                                                  notice.recipient)
    assert incident.evidence == f"withdrawal notice {notice.reference}" and LOGICAL_DATE.isoformat() in incident.where
    assert subject not in str(incident.to_payload()) and pseudonym not in str(incident.to_payload())


@pytest.mark.parametrize("override", [False, True])
def test_a_statutory_flow_excludes_a_notified_withdrawal_unless_its_ground_overrides_withdrawals(
        world, gpg_partner, cli, override):
    numbers = list(synthetic.referrals(40, LOGICAL_DATE)["nhs_number"])
    edit_agreement(world, lambda d: flow_of(d, "A")["consent"].__setitem__("override_opt_outs", override))
    withdrawn = cli("consent", "withdraw", numbers[0])  # before anyone received the subject
    assert withdrawn.exit_code == 0, withdrawn.output
    assert "withdrawal recorded in the withdrawals register" in withdrawn.output
    assert ("flow(s) A override withdrawals" in withdrawn.output) is override
    assert "no partner has received this subject" in withdrawn.output

    results = run_flow(world.run("mash-referrals.A"), world.resolvers())

    name = pseudonyms(world, "mash-referrals.A", [numbers[0]])[numbers[0]]
    frame = sent(world, gpg_partner, SYP)
    assert (name in set(frame["nhs_number"])) is override
    assert len(frame) == (40 if override else 39)
    assert results["prepare"]["excluded"] == ({} if override else {"withdrawn_notified": 1})
    [no_consent] = payloads(world, "shared-without-consent", "mash-referrals.A")
    assert no_consent["opt_outs_overridden"] == ({"withdrawn_notified": 1} if override else {})
    # Sent under the override, the police are told of the withdrawal that night.
    assert results["notify"]["sent"] == (1 if override else 0)
    assert len(notices(world, gpg_partner, SYP)) == (1 if override else 0)

    history = cli("subject", "history", numbers[0]).stdout
    if override:
        assert "without consent: safeguarding; withdrawn (notified) overridden" in history
    else:
        [excluded] = [line for line in history.splitlines() if " excluded " in line]
        assert "mash-referrals.A" in excluded and "withdrawn (notified)" in excluded
        assert " disclosed " not in history


def test_a_withdrawal_deleted_from_the_register_is_caught_by_subject_verify(world, cli):
    import sqlite3

    assert cli("consent", "withdraw", "-", stdin="999 000 0018\n").exit_code == 0
    [entry] = payloads(world, "withdrawal")
    assert set(entry) == {"lookup"}  # the keyed lookup only, never the identifier
    ok = cli("subject", "verify")
    assert ok.exit_code == 0, ok.output

    db = sqlite3.connect(world.settings.home / "ledger.db")
    assert db.execute("DELETE FROM subject_withdrawals").rowcount == 1
    db.commit()
    db.close()

    bad = cli("subject", "verify")
    assert bad.exit_code == 3
    assert "missing from the withdrawals register" in bad.output
    assert "9990000018" not in bad.output
