"""A withdrawal sent by the sender removes the subject's rows at the police, who confirm it signed; the sender
records the confirmation and ``subject history`` shows it. Real sshd, PostgreSQL and gpg, two parties.
"""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.exchange_world import (
    FLOW,
    RECIPIENT,
    Exchange,
    exchange,
    mailbox_exchange,
    police_keys,
    police_sshd,
)
from tests.integration.privacy_world import pseudonyms
from transfers.confirmation import confirmation_name
from transfers.crypto import encrypt_to_file, load_own_signing_key, load_recipient_key
from transfers.devkit import synthetic
from transfers.ledger.records import NoticeApplied, NoticeConfirmed, NoticeRefused
from transfers.receipt import RECEIPTS_DIR

__all__ = ["exchange", "mailbox_exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

TABLE = "received_mash_referrals_a"


def subject_rows(ex: Exchange, pseudonym: str | None = None) -> int:
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            query = f'SELECT count(*) FROM "{TABLE}"' + (" WHERE nhs_number = :p" if pseudonym else "")
            return int(conn.execute(sa.text(query), {"p": pseudonym} if pseudonym else {}).scalar_one())
    finally:
        engine.dispose()


def apply(ex: Exchange):
    from transfers.receive.notices import apply_notices

    with ex.police.settings.open_ledger() as ledger:
        return apply_notices(ex.police.settings, ex.police.config, ledger, ex.police.resolvers(), me=RECIPIENT)


def collect(ex: Exchange):
    from transfers.notice_confirmations import collect_confirmations

    with ex.sender.settings.open_ledger() as ledger:
        return collect_confirmations(ex.sender.settings, ex.sender.config, ledger, ex.sender.resolvers().connection)


def police_records(ex: Exchange, cls):
    with ex.police.settings.open_ledger() as ledger:
        return list(ledger.records(cls))


@pytest.fixture
def received(exchange: Exchange):
    """Flow A delivered to the police and loaded; the subject withdrawn is the first referral sent."""
    exchange.send()
    exchange.police.receive()
    subject = next(s for s in synthetic.referrals(40, LOGICAL_DATE)["nhs_number"]
                   if subject_rows(exchange, pseudonyms(exchange.sender, FLOW, [s])[s]))
    return exchange, subject, pseudonyms(exchange.sender, FLOW, [subject])[subject]


def test_a_withdrawal_removes_the_subjects_rows_at_the_police_and_the_sender_records_their_confirmation(
        received, cli):
    ex, subject, pseudonym = received
    before, theirs = subject_rows(ex), subject_rows(ex, pseudonym)
    assert theirs >= 1
    assert cli("consent", "withdraw", subject).exit_code == 0
    [sent] = [p for p in ex.inbox.iterdir() if "-notice_" in p.name]
    notice_bytes = sent.read_bytes()

    [outcome] = apply(ex)

    assert (outcome.status, outcome.notice, outcome.rows, outcome.tables) == ("applied", "withdrawal", theirs, (TABLE,))
    assert subject_rows(ex, pseudonym) == 0
    assert subject_rows(ex) == before - theirs  # only theirs
    [applied] = police_records(ex, NoticeApplied)
    assert (applied.reference, applied.rows, applied.sender) == (outcome.reference, theirs, ex.sender.config.flow(
        FLOW).flow.from_)
    assert not [p for p in ex.inbox.iterdir() if "-notice_" in p.name]  # the notice has left the inbox
    name = confirmation_name("mash-referrals", "A", "withdrawal", outcome.reference)
    document = json.loads((ex.inbox / RECEIPTS_DIR / name).read_bytes())
    assert document["rows"] == theirs and document["signer_fingerprint"] == ex.keys.signing_fingerprint
    assert pseudonym not in json.dumps(document)

    collect(ex)

    [confirmed] = ex.sender_records(NoticeConfirmed)
    assert (confirmed.recipient, confirmed.reference, confirmed.rows) == (RECIPIENT, outcome.reference, theirs)
    assert confirmed.signer_fingerprint == ex.keys.signing_fingerprint
    history = cli("subject", "history", subject)
    assert history.exit_code == 0, history.output
    [line] = [line for line in history.output.splitlines() if " notice " in line]
    assert f"confirmed: {theirs} rows deleted" in line
    listed = cli("notices", "confirmations")
    assert listed.exit_code == 0 and "confirmed" in listed.output

    # A rerun at either end does nothing twice, even with the notice back in the inbox (a crash before its removal).
    assert apply(ex) == []
    sent.write_bytes(notice_bytes)
    [again] = apply(ex)
    assert (again.status, again.rows) == ("already", theirs) and not sent.exists()
    collect(ex)
    assert len(police_records(ex, NoticeApplied)) == 1 and len(ex.sender_records(NoticeConfirmed)) == 1
    assert subject_rows(ex) == before - theirs


def test_a_correction_marks_the_subjects_rows_and_is_confirmed_as_marked(received, cli):
    ex, subject, pseudonym = received
    theirs = subject_rows(ex, pseudonym)
    assert cli("correct", subject, "--fields", "postcode", "--reference", "RECT-1").exit_code == 0

    [outcome] = apply(ex)
    collect(ex)

    assert (outcome.status, outcome.notice, outcome.rows) == ("applied", "correction", theirs)
    assert subject_rows(ex, pseudonym) == theirs  # nothing deleted
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            marks = conn.execute(sa.text("SELECT table_name, subject, fields FROM received_corrections")).all()
    finally:
        engine.dispose()
    assert [tuple(m) for m in marks] == [(TABLE, pseudonym, '["postcode"]')]
    [line] = [line for line in cli("subject", "history", subject).output.splitlines() if " notice " in line]
    assert f"confirmed: {theirs} rows marked" in line


def test_before_the_police_apply_it_the_notice_is_unconfirmed(received, cli):
    ex, subject, _pseudonym = received
    assert cli("consent", "withdraw", subject).exit_code == 0

    collect(ex)

    assert ex.sender_records(NoticeConfirmed) == []
    [line] = [line for line in cli("subject", "history", subject).output.splitlines() if " notice " in line]
    assert line.endswith("unconfirmed")


def forged_notice(ex: Exchange, pseudonym: str) -> str:
    """A withdrawal encrypted to the police as a real notice is, but signed by a key that is not the sender's
    pinned one, put in their inbox; its name."""
    ref = ex.sender.config.flow(FLOW)
    notice = {"notice": "withdrawal", "agreement": "mash-referrals", "flow": "A", "sender": ref.flow.from_,
              "recipient": RECIPIENT, "subject": {"field": "nhs_number", "pseudonyms": [pseudonym], "key_ids": []},
              "disclosures": [], "fields": [], "action": "", "reference": "0123456789ab", "issued_at": "2026-11-26"}
    name = "mash-referrals_A_withdrawal-notice_0123456789ab.json.pgp"
    police = ref.flow.to[0]
    # Encrypted to the police as a real notice is, but signed by a key that is not the sender's pinned one.
    forger = load_own_signing_key(ex.keys.signing_secret, ex.keys.signing_fingerprint)
    key = load_recipient_key(ex.sender.settings.keys / police.key_file, police.pgp_fingerprint)
    encrypt_to_file(json.dumps(notice).encode(), key, ex.inbox / name, filename=name.removesuffix(".pgp"),
                    signer=forger)
    return name


def test_a_notice_signed_by_another_key_is_refused_and_nothing_is_deleted(received, cli):
    ex, _subject, pseudonym = received
    before = subject_rows(ex)
    name = forged_notice(ex, pseudonym)

    [outcome] = apply(ex)

    assert outcome.status == "refused" and "not" in outcome.reason and "pinned signing key" in outcome.reason
    assert subject_rows(ex) == before and subject_rows(ex, pseudonym) >= 1
    [refused] = police_records(ex, NoticeRefused)
    assert refused.name == name
    assert police_records(ex, NoticeApplied) == []
    assert not (ex.inbox / name).exists()  # quarantined, still encrypted
    assert not (ex.inbox / RECEIPTS_DIR / confirmation_name("mash-referrals", "A", "withdrawal",
                                                             "0123456789ab")).exists()
    assert apply(ex) == []


def test_a_refused_notice_s_quarantine_copy_is_published_to_the_s3_work_store(received, tmp_path):
    """With several workers the evidence of a refused notice is where every worker's purge finds it. moto's S3
    server stands for the work store."""
    from tests.support.s3 import moto_s3, s3_bucket
    from transfers.settings import Settings

    ex, _subject, pseudonym = received
    name = forged_notice(ex, pseudonym)
    with moto_s3("work_s3") as conn, s3_bucket(conn, "isp-work", versioned=False) as (client, bucket):
        ex.police.settings = Settings(**{**ex.police.settings.model_dump(), "work_store": f"s3://{bucket}/work",
                                         "work_store_conn_id": "work_s3"})
        ex.police.connections["work_s3"] = conn

        [outcome] = apply(ex)

        assert outcome.status == "refused"
        listed = client.list_objects_v2(Bucket=bucket, Prefix="work/quarantine/mash-referrals/A/")["Contents"]
        stored = sorted(item["Key"].rsplit("/", 1)[1] for item in listed)
        assert stored == sorted([name, "reason.json"])
        assert not (ex.police.settings.home / "quarantine" / "mash-referrals" / "A").exists() or not [
            p for p in (ex.police.settings.home / "quarantine" / "mash-referrals" / "A").rglob("*") if p.is_file()]


def test_a_notice_on_a_remote_mailbox_is_applied_and_confirmed_there(mailbox_exchange, cli):
    ex = mailbox_exchange
    ex.send()
    ex.police.receive()
    subject = next(s for s in synthetic.referrals(40, LOGICAL_DATE)["nhs_number"]
                   if subject_rows(ex, pseudonyms(ex.sender, FLOW, [s])[s]))
    pseudonym = pseudonyms(ex.sender, FLOW, [subject])[subject]
    assert cli("consent", "withdraw", subject).exit_code == 0

    [outcome] = apply(ex)

    assert outcome.status == "applied" and subject_rows(ex, pseudonym) == 0
    assert not [p for p in ex.inbox.iterdir() if "-notice_" in p.name]  # taken off the mailbox
    collect(ex)
    [confirmed] = ex.sender_records(NoticeConfirmed)
    assert confirmed.rows == outcome.rows
