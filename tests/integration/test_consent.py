"""Consent, opt-outs and deceased persons, end to end: who is absent from what gpg decrypts, and the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE, files_containing
from tests.integration.privacy_world import edit_agreement, flow_of, payloads, pseudonyms, sent, write_ed, write_list
from transfers.devkit import synthetic
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

ED_DIR = "inbound/ed-attendances"


def ed_numbers() -> list[str]:
    """Flow B's subjects as the export prints them (every third one with spaces)."""
    return list(synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"])


def plain(number: str) -> str:
    return number.replace(" ", "")


def test_under_consent_withdrawn_restricted_and_opted_out_subjects_are_absent_and_counted(world, gpg_partner):
    numbers = ed_numbers()
    later = (LOGICAL_DATE + timedelta(days=5)).isoformat()
    register = write_list(world, "consent.csv", [
        # The export prints numbers[0] with spaces; the register without: still one person.
        {"subject": plain(numbers[0]), "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": numbers[1], "status": "restricted", "effective": "2026-01-01"},
        {"subject": numbers[3], "status": "withdrawn", "effective": later},  # not yet in force: sent
        {"subject": numbers[4], "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": numbers[4], "status": "given", "effective": "2026-02-01"},  # consent given again: sent
    ])
    opt_outs = write_list(world, "opt_outs.csv", [{"nhs_number": numbers[2]}])

    def declare(data: dict) -> None:
        flow_of(data, "B")["consent"] = {
            "basis": "consent",
            "consent_register": {"kind": "csv", "connection": "rft_exports", "path": register},
            "opt_outs": {"kind": "csv", "connection": "rft_exports", "path": opt_outs, "subject": "nhs_number",
                         "status": None, "effective": None},
        }

    edit_agreement(world, declare)
    results = run_flow(world.run("mash-referrals.B"), world.resolvers())

    frame = sent(world, gpg_partner, ED_DIR)
    names = pseudonyms(world, "mash-referrals.B", [plain(n) for n in numbers])
    got = set(frame["nhs_number"])
    for absent in numbers[:3]:
        assert names[plain(absent)] not in got
    for present in numbers[3:]:
        assert names[plain(present)] in got
    assert len(frame) == 27
    assert results["prepare"]["excluded"] == {"withdrawn": 1, "restricted": 1, "opted_out": 1}
    privacy = payloads(world, "privacy", "mash-referrals.B")
    assert privacy[-1]["excluded"] == {"withdrawn": 1, "restricted": 1, "opted_out": 1}
    assert privacy[-1]["basis"] == "consent"
    assert payloads(world, "shared-without-consent") == []
    # Neither the ledger nor anything else the sender keeps holds an identifier in clear.
    assert files_containing(world.settings.home, [plain(n) for n in numbers] + numbers) == []


def _consent_table(pg_source, rows: list[tuple[str, str, str]]) -> None:
    engine = sa.create_engine(pg_source[0])
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS consent_register"))
        conn.execute(sa.text("CREATE TABLE consent_register (nhs text, state text, since date)"))
        conn.execute(sa.text("INSERT INTO consent_register VALUES (:n, :s, :d)"),
                     [{"n": n, "s": s, "d": d} for n, s, d in rows])
    engine.dispose()


@pytest.mark.parametrize("override", [False, True])
def test_statutory_sends_withdrawn_subjects_only_when_the_flow_overrides_and_records_it(
        world, gpg_partner, pg_source, override):
    numbers = list(synthetic.referrals(40, LOGICAL_DATE)["nhs_number"])
    _consent_table(pg_source, [(numbers[0], "withdrawn", "2026-01-01"), (numbers[1], "restricted", "2026-01-01")])

    def declare(data: dict) -> None:
        basis = flow_of(data, "A")["consent"]
        basis["override_opt_outs"] = override
        basis["consent_register"] = {"kind": "sql", "connection": "cs_case_db", "table": "consent_register",
                                     "subject": "nhs", "status": "state", "effective": "since"}

    edit_agreement(world, declare)
    run_flow(world.run("mash-referrals.A"), world.resolvers())

    frame = sent(world, gpg_partner, "inbound/mash")
    names = pseudonyms(world, "mash-referrals.A", numbers[:2])
    assert (names[numbers[0]] in set(frame["nhs_number"])) is override
    assert (names[numbers[1]] in set(frame["nhs_number"])) is override
    assert len(frame) == (40 if override else 38)
    [entry] = payloads(world, "shared-without-consent", "mash-referrals.A")
    assert entry["ground"] == "safeguarding"
    assert entry["legal_basis"] == "children-act-1989"
    assert "Section 47" in entry["justification"]
    assert entry["rows"] == len(frame)
    assert entry["override_opt_outs"] is override
    assert entry["opt_outs_overridden"] == ({"withdrawn": 1, "restricted": 1} if override else {})
    excluded = payloads(world, "privacy", "mash-referrals.A")[-1]["excluded"]
    assert excluded == ({} if override else {"withdrawn": 1, "restricted": 1})
    # A subject access request shows the sharing without consent, and an override, per person.
    from transfers.privacy.step import subject_lookup_key
    from transfers.privacy.subjects import SubjectIndex, lookup_of

    key = subject_lookup_key(world.run("mash-referrals.A"), lambda n: world.secrets[n])
    index = SubjectIndex.for_settings(world.settings)
    withdrawn = [(e.event, e.detail) for e in index.events([lookup_of(numbers[0], key)])]
    other = [(e.event, e.detail) for e in index.events([lookup_of(numbers[5], key)])]
    index.close()
    # Sent under the override, the recipient is still told of the withdrawal (protocol 3.1).
    assert withdrawn == ([("disclosed", "without consent: safeguarding; withdrawn overridden"),
                          ("notice", "withdrawal")] if override else [("excluded", "withdrawn")])
    assert other == [("disclosed", "without consent: safeguarding")]


def _with_deaths(on) -> tuple[list[str], object]:
    frame = synthetic.ed_attendances(30, on)
    frame["date_of_death"] = None
    frame.loc[[5, 6], "date_of_death"] = (on - timedelta(days=3)).isoformat()
    return [plain(n) for n in frame["nhs_number"][[5, 6]]], frame


@pytest.mark.parametrize("handling", ["exclude", "send_with_caution"])
def test_deceased_persons_are_excluded_by_default_or_sent_under_caution_with_the_count(world, gpg_partner, handling):
    dead, frame = _with_deaths(LOGICAL_DATE)
    write_ed(world, frame, LOGICAL_DATE)

    def declare(data: dict) -> None:
        flow = flow_of(data, "B")
        flow["fields"]["date_of_death"] = {"share": "drop"}
        flow["deceased"] = {"date_of_death": "date_of_death"} | ({"handling": handling}
                                                                  if handling != "exclude" else {})

    edit_agreement(world, declare)
    results = run_flow(world.run("mash-referrals.B"), world.resolvers())

    frame_sent = sent(world, gpg_partner, ED_DIR)
    names = pseudonyms(world, "mash-referrals.B", dead)
    assert "date_of_death" not in frame_sent.columns
    present = {names[d] in set(frame_sent["nhs_number"]) for d in dead}
    assert present == {handling == "send_with_caution"}
    expected = {"handling": handling, "excluded": 2 if handling == "exclude" else 0,
                "sent_with_caution": 2 if handling == "send_with_caution" else 0}
    assert results["prepare"]["deceased"] == expected
    assert payloads(world, "privacy", "mash-referrals.B")[-1]["deceased"] == expected


def test_a_register_that_is_missing_stops_the_run_rather_than_sending_everyone(world):
    from transfers.errors import SourceError

    edit_agreement(world, lambda d: flow_of(d, "B").__setitem__("consent", {
        "basis": "consent", "consent_register": {"kind": "csv", "connection": "rft_exports", "path": "lists/gone.csv"}}))
    with pytest.raises(SourceError, match="consent register is not there"):
        run_flow(world.run("mash-referrals.B"), world.resolvers())
    assert world.delivered(ED_DIR) == []


def test_overriding_an_opt_out_does_not_override_the_deceased_choice(world, gpg_partner):
    dead, frame = _with_deaths(LOGICAL_DATE)
    write_ed(world, frame, LOGICAL_DATE)
    opt_outs = write_list(world, "opt_outs.csv", [{"subject": dead[0]}])

    def declare(data: dict) -> None:
        flow = flow_of(data, "B")
        flow["fields"]["date_of_death"] = {"share": "drop"}
        flow["deceased"] = {"date_of_death": "date_of_death"}
        flow["consent"] = {"basis": "statutory", "legal_basis": "children-act-1989", "ground": "safeguarding",
                           "justification": "Children seen with injuries must be known to the MASH the same day.",
                           "override_opt_outs": True,
                           "opt_outs": {"kind": "csv", "connection": "rft_exports", "path": opt_outs,
                                        "status": None, "effective": None}}

    edit_agreement(world, declare)
    results = run_flow(world.run("mash-referrals.B"), world.resolvers())

    names = pseudonyms(world, "mash-referrals.B", dead)
    assert not {names[d] for d in dead} & set(sent(world, gpg_partner, ED_DIR)["nhs_number"])
    assert results["prepare"]["excluded"] == {"deceased": 2}
    assert "opt_outs_overridden" not in results["prepare"]
