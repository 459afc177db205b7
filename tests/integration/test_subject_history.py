"""``transfers subject history``: one person's whole trail for IG, and nothing at all for a stranger."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.privacy_world import edit_agreement, flow_of, write_list
from tests.integration.test_notices import HEALTH, shared_twice  # noqa: F401 - fixtures
from transfers.devkit import synthetic
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration


def rows(output: str) -> list[str]:
    return [line for line in output.splitlines() if LOGICAL_DATE.isoformat() in line or "notice" in line]


def test_history_lists_every_disclosure_and_notice_for_the_subject(world, cli, shared_twice):  # noqa: F811
    subject = shared_twice[0]
    assert cli("consent", "withdraw", subject).exit_code == 0

    result = cli("subject", "history", subject)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    disclosed = [line for line in lines if "disclosed" in line]
    noticed = [line for line in lines if " notice " in f" {line} "]
    assert len(disclosed) == 2 and len(noticed) == 2
    assert any("south-yorkshire-police" in line for line in disclosed)
    assert any("rotherham-nhs-ft" in line for line in disclosed)
    assert all("mash-referrals.A" in line and LOGICAL_DATE.isoformat() in line for line in disclosed)
    assert all(line.split()[-1] == "unacknowledged" for line in disclosed)  # no recipient has returned a receipt
    assert all("withdrawal" in line for line in noticed)
    assert "rotherham-childrens-services" not in result.output  # flow B never carried this child
    assert subject not in result.output


def test_history_as_json_has_one_line_per_event_and_never_the_identifier(world, cli, shared_twice):  # noqa: F811
    subject = shared_twice[0]
    assert cli("consent", "withdraw", subject).exit_code == 0
    table = cli("subject", "history", subject).stdout.splitlines()[1:]  # the TSV, below its header

    result = cli("subject", "history", subject, "--json")

    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == len(table)
    shared = [e for e in events if e["what"] in ("disclosed", "notice")]
    assert sorted(e["what"] for e in shared) == ["disclosed", "disclosed", "notice", "notice"]
    assert {e["recipient"] for e in shared} == {"south-yorkshire-police", "rotherham-nhs-ft"}
    for event, line in zip(events, table, strict=True):  # the same events, in the same order, as the lines
        assert f" {event['what']} " in f" {line} " and (event["logical_date"] or "-") in line
        if event in shared:
            shown = [event["flow"], event["recipient"], event["pseudonym"], str(event["ledger_entry"]), event["receipt"]]
            assert all(value in line for value in shown), (shown, line)
            assert isinstance(event["ledger_entry"], int) and event["pseudonym"].endswith(")")  # "p... (key id)"
    assert subject not in result.stdout and subject.replace(" ", "") not in result.stdout


def test_history_shows_an_exclusion(world, cli):
    numbers = [n.replace(" ", "") for n in synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"]]
    register = write_list(world, "consent.csv", [{"subject": numbers[2], "status": "restricted",
                                                  "effective": "2026-01-01"}])
    edit_agreement(world, lambda d: flow_of(d, "B")["consent"].update(
        consent_register={"kind": "csv", "connection": "rft_exports", "path": register}))
    run_flow(world.run("mash-referrals.B"), world.resolvers())

    result = cli("subject", "history", numbers[2])

    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "excluded" in line]
    assert "restricted" in line and "mash-referrals.B" in line
    assert "disclosed" not in result.output


def test_history_prints_nothing_for_a_stranger(world, cli, shared_twice):  # noqa: F811
    result = cli("subject", "history", "999 000 0018")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no disclosure, exclusion or notice is recorded for this subject" in result.stderr


def test_history_without_the_key_is_an_error_not_an_empty_answer(world, cli, shared_twice, monkeypatch):  # noqa: F811
    monkeypatch.delenv("AIRFLOW_VAR_MASH_PSEUDONYM_KEY", raising=False)
    from typer.testing import CliRunner

    from transfers.cli import app

    result = CliRunner().invoke(app, ["subject", "history", shared_twice[0]])
    assert result.exit_code != 0
    assert "mash_pseudonym_key" in result.output
    assert HEALTH  # the two-partner world was built


def test_subject_records_verify_against_the_ledger_and_a_removed_row_is_named(world, cli, shared_twice):  # noqa: F811
    import sqlite3

    ok = cli("subject", "verify")
    assert ok.exit_code == 0, ok.output
    assert "3 disclosure(s) match" in ok.output  # flow A to two partners, flow B to one

    db = sqlite3.connect(world.settings.home / "ledger.db")
    removed = _remove_one_subject(db, "rotherham-nhs-ft")
    assert removed == 1
    db.commit()
    db.close()

    bad = cli("subject", "verify")
    assert bad.exit_code == 3
    assert "rotherham-nhs-ft" in bad.output and "39 subject(s)" in bad.output and "says 40" in bad.output
    assert "south-yorkshire-police" not in bad.output


def _remove_one_subject(db, recipient: str) -> int:
    """Take one subject out of the disclosure to ``recipient``, as an edit of the database would.

    Every recipient's disclosure points at the one prepared set of subjects, so the edit
    gives this disclosure its own copy of that set, one subject short.
    """
    import numpy as np

    from transfers.privacy import members

    header, source = db.execute("SELECT id, source FROM subject_headers WHERE event = 'disclosed' "
                                "AND recipient = ? ORDER BY id LIMIT 1", (recipient,)).fetchone()
    rows = db.execute("SELECT block, data FROM subject_members WHERE header_id = ? ORDER BY block", (source,))
    ids = np.concatenate([members.unpack(block, data) for block, data in rows])
    db.execute("UPDATE subject_headers SET source = NULL WHERE id = ?", (header,))
    db.executemany("INSERT INTO subject_members VALUES (?, ?, ?)",
                   [(header, block, members.encode(part)) for block, part in members.split(ids[1:])])
    return len(ids) - len(ids[1:])


def test_recorded_subjects_are_those_of_the_file_delivered_even_after_a_retry_prepared_again(world, gpg_partner):
    from tests.integration.conftest import read_delivery
    from tests.integration.privacy_world import write_ed
    from transfers.privacy.subjects import SubjectIndex
    from transfers.steps.deliver import deliver
    from transfers.steps.encrypt import encrypt
    from transfers.steps.extract import extract
    from transfers.steps.prepare import prepare
    from transfers.steps.quality import quality

    run = world.run("mash-referrals.B")
    resolvers = world.resolvers()
    ledger = world.settings.open_ledger()
    partner = "rotherham-childrens-services"

    def prepare_from(frame) -> None:
        write_ed(world, frame, LOGICAL_DATE)
        extract(run, resolvers, ledger)
        quality(run, resolvers, ledger)
        prepare(run, resolvers, ledger)

    recipient = run.recipient(partner)
    prepare_from(synthetic.ed_attendances(30, LOGICAL_DATE))
    encrypt(run, resolvers, ledger, recipient)  # sealed; then the task fails before delivery
    prepare_from(synthetic.ed_attendances(30, LOGICAL_DATE, seed=99))  # the retry sees other rows
    assert encrypt(run, resolvers, ledger, recipient)["reused"] is True
    result = deliver(run, resolvers, ledger, recipient)

    [delivered] = world.delivered("inbound/ed-attendances")
    in_file = set(read_delivery(gpg_partner, delivered)["nhs_number"])
    index = SubjectIndex.for_settings(world.settings)
    disclosure = run.disclosure_key(recipient)
    recorded = set(index.pseudonyms("disclosed", disclosure))
    index.close()
    assert recorded == in_file and len(recorded) == 30
    entry = ledger.find(disclosure)
    assert entry.seq == result["ledger_seq"] and entry.payload["subjects"]["subjects"] == 30


def prepared_rows(world, flow_key: str) -> int:
    """Subjects prepared for the flow that no disclosure holds (yet): a retry's working set."""
    from transfers.privacy.subjects import SubjectIndex

    index = SubjectIndex.for_settings(world.settings)
    try:
        return index.unsent(flow_key)
    finally:
        index.close()


def test_working_subject_rows_go_once_every_recipient_has_its_disclosure(world, cli):
    import dataclasses

    from transfers.errors import DeliveryUnavailable

    up = world.connections["cs_sftp"]
    world.connections["cs_sftp"] = dataclasses.replace(up, port=1)  # the recipient's server is down
    with pytest.raises(DeliveryUnavailable):
        run_flow(world.run("mash-referrals.B"), world.resolvers())
    assert prepared_rows(world, "mash-referrals.B") == 30  # kept: the retry records who the outbox holds

    world.connections["cs_sftp"] = up
    result = run_flow(world.run("mash-referrals.B"), world.resolvers())

    assert result["deliver_rotherham-childrens-services"]["status"] == "delivered"
    assert prepared_rows(world, "mash-referrals.B") == 0
    verified = cli("subject", "verify")
    assert verified.exit_code == 0, verified.output  # the disclosed rows are untouched
