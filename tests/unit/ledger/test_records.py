"""The typed ledger records: each writes today's payload and dedupe key, and reads old entries back."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.support.demo_ledger import write_demo_ledger
from transfers.ledger import Entry, Ledger
from transfers.ledger.records import (
    KINDS,
    Acknowledgement,
    Archived,
    CertificateIssued,
    CertificateRefused,
    DeliveryIntent,
    Destroyed,
    DestructionCertified,
    Disclosure,
    Extracted,
    Incident,
    LegalHold,
    Notice,
    NoticeApplied,
    NoticeConfirmationRefused,
    NoticeConfirmed,
    NoticeRefused,
    PrivacyResult,
    PseudonymKey,
    Purged,
    PurgeFailed,
    QualityResult,
    ReceiptRefused,
    Received,
    RecipientKeyRefused,
    RemoteFile,
    SharedWithoutConsent,
    Withdrawal,
    record_of,
)

AT = datetime(2026, 11, 26, 4, 2, 57, 123456, tzinfo=UTC)
DAY = date(2026, 11, 25)
FLOW = "mash-referrals.A"
COLUMNS = {"agreement": "mash-referrals", "flow": FLOW, "logical_date": DAY}


def _samples() -> list:
    file = RemoteFile("inbound/mash/a.csv.pgp", 123, "ab" * 32, "delivered")
    return [
        QualityResult(**COLUMNS, summary={"agreement": "mash-referrals", "flow": "A", "logical_date": "2026-11-25",
                                          "rows": 120, "nulls": {"postcode": 2}, "blocked": []}),
        PrivacyResult(**COLUMNS, excluded={"withdrawn": 3}, basis="consent", k={"k": 5, "passed": True},
                      rows_screened=80, rows_sent=77, pseudonym_key_id="mash-2026-04"),
        SharedWithoutConsent(**COLUMNS, legal_basis="children-act-1989-s47", ground="risk-of-harm",
                             justification="a child is at risk of significant harm", override_opt_outs=True, rows=9,
                             opt_outs_overridden={"opted_out": 1}),
        PseudonymKey(**COLUMNS, domain="mash", key_id="mash-2026-04", key_fingerprint="f" * 16, event="rotation",
                     previous={"domain": "mash", "key_id": "mash-2025-04", "key_fingerprint": "e" * 16}),
        RecipientKeyRefused(**COLUMNS, recipient="syp", partner="syp", fingerprint="0" * 40, key_file="syp.asc",
                            reason="fingerprint differs"),
        DeliveryIntent(**COLUMNS, recipient="syp", disclosure_key=f"disclosure:{FLOW}:2026-11-25:syp",
                       host="127.0.0.1:22", remote_dir="inbound/mash",
                       files=(RemoteFile("inbound/mash/a.csv.pgp", 123, "ab" * 32),
                              RemoteFile("inbound/mash/a.manifest.json"))),
        Disclosure(**COLUMNS, recipient="syp", status="delivered", sender="cs", purposes=("safeguarding",),
                   legal_basis=("children-act-1989-s47",), fields=("nhs_number", "postcode"), rows=120,
                   recipient_fingerprint="5" * 40, host="127.0.0.1:22", remote_dir="inbound/mash",
                   pseudonym_key_id="mash-2026-04", subjects={"subjects": 120, "subjects_sha256": "c" * 64},
                   files=(file,)),
        Withdrawal(agreement="mash-referrals", lookup="d" * 64),
        Notice(agreement="mash-referrals", flow=FLOW, recipient="syp", notice="withdrawal", lookup="d" * 64,
               occasion="withdrawn", pseudonyms=("p1",), fields=("postcode",), reference="d22d80aa7c4f",
               recipient_fingerprint="5" * 40, host="127.0.0.1:22", file=file),
        Archived(**COLUMNS, recipient="syp", store="local", path="/home/archive/mash-referrals/A/2026-11-25/syp/a.csv.pgp",
                 size=123, sha256="ab" * 32, created=AT, due=AT, rule="retention.archive P6M", at=AT),
        Purged(**COLUMNS, recipient="syp", key=Purged.remote_key(FLOW, "syp", "inbound/mash/a.csv.pgp"),
               place="remote", store="sftp", path="inbound/mash/a.csv.pgp", created=AT, due=AT,
               rule="retention.remote P14D", as_of=AT, size=123, sha256="ab" * 32, deleted_at=AT, verified="absent"),
        Purged(**COLUMNS, key=Purged.s3_key("s3://b/k"), place="archive", store="s3", path="s3://b/k", created=AT,
               due=AT, rule="retention.archive P6M", as_of=AT, size=1, sha256=None, deleted_at=AT,
               verified="no version left", note="already absent", versions_deleted=0),
        PurgeFailed(**COLUMNS, recipient="syp", place="remote", store="sftp", path="inbound/mash/a.csv.pgp",
                    created=AT, due=AT, rule="retention.remote P14D", as_of=AT, error="refused", attempted_at=AT),
        Received(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp", sender="cs",
                 status="rejected", reason="part 1: signed by another key", manifest_sha256="ab" * 32,
                 files=(RemoteFile("a.csv.pgp", 123, "ab" * 32),), receipt_sha256="cd" * 32,
                 received_at=AT.isoformat(), destroy_by="2032-11-25"),
        Acknowledgement(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp",
                        status="acknowledged", manifest_sha256="ab" * 32, rows=120, receipt_sha256="cd" * 32,
                        signer_fingerprint="5" * 40, received_at=AT.isoformat(),
                        recipient_ledger_head={"seq": 4, "hash": "ee" * 32}),
        ReceiptRefused(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp",
                       reason="signed by 6666 not the pinned key", receipt_sha256="cd" * 32),
        Destroyed(**COLUMNS, recipient="syp", place="received", delivery_id="mash-referrals:A:2026-11-25:syp",
                  sender="cs", controller="cs", rows=120, destroy_by="2032-11-25", rule="controller cs P6Y (manifest)",
                  manifest_sha256="ab" * 32, path="received_mash_referrals_a", created=AT, destroyed_at=AT,
                  verified="absent after deletion", as_of=AT, at=AT),
        Destroyed(**COLUMNS, recipient="syp", place="quarantine", delivery_id="mash-referrals:A:2026-11-25:syp",
                  sender="cs", controller="cs", destroy_by=None, rule="retention.staging P7D after quarantine",
                  path="/home/quarantine/mash-referrals/A/2026-11-25/cs", created=AT,
                  files=(RemoteFile("a.csv.pgp", 123, "ab" * 32),), destroyed_at=AT, verified="absent", at=AT),
        LegalHold(agreement="mash-referrals", action="add", scope="subject", target="p-4f1c",
                  reason="case 2026/114", by="ig-officer", at=AT),
        DestructionCertified(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp",
                             certificate_sha256="ef" * 32, signer_fingerprint="5" * 40, manifest_sha256="ab" * 32,
                             rows=120, destroyed_at="2032-11-26T03:00:00+00:00",
                             rule="controller cs P6Y: destroy_by 2032-11-25 (manifest)",
                             recipient_ledger_head={"seq": 40, "hash": "ee" * 32}),
        CertificateRefused(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp",
                           reason="signature does not verify", certificate_sha256="ef" * 32),
        CertificateIssued(**COLUMNS, recipient="syp", delivery_id="mash-referrals:A:2026-11-25:syp", controller="cs",
                          certificate_sha256="ef" * 32, rows=120, sent_to="inbox"),
        NoticeApplied(agreement="mash-referrals", flow=FLOW, recipient="syp", reference="d22d80aa7c4f",
                      notice="withdrawal", sender="cs", rows=2, tables=("received_mash_referrals_a",),
                      notice_sha256="ab" * 32, confirmation_sha256="cd" * 32, applied_at=AT.isoformat()),
        NoticeRefused(agreement="mash-referrals", flow=FLOW, recipient="syp",
                      name="mash-referrals_A_withdrawal-notice_d22d80aa7c4f.json.pgp",
                      reason="signed by key 66, not the pinned key", notice_sha256="ab" * 32),
        NoticeConfirmed(agreement="mash-referrals", flow=FLOW, recipient="syp", reference="d22d80aa7c4f",
                        notice="withdrawal", rows=2, confirmation_sha256="cd" * 32, signer_fingerprint="5" * 40,
                        applied_at=AT.isoformat(), recipient_ledger_head={"seq": 7, "hash": "ee" * 32}),
        NoticeConfirmationRefused(agreement="mash-referrals", flow=FLOW, recipient="syp", reference="d22d80aa7c4f",
                                  reason="signature does not verify", confirmation_sha256="cd" * 32),
        Incident(**COLUMNS, recipient="syp", what="host-key-mismatch", party="cs", where="sftp.syp.example:22",
                 evidence="ssh-ed25519 SHA256:abc", detail="SFTP server sftp.syp.example:22: host key ... not pinned",
                 notified=True, notice="emailed ig@cs.example"),
        Extracted(**COLUMNS, connection="cs_exports_s3", bucket="cs-exports", key="exports/2026-11-25/referrals.csv",
                  version_id="3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", etag='"9b2cf535f27731c974343645a3985328"',
                  size=4812, format="csv", rows=120),
    ]


def _as_entry(record, seq: int = 1) -> Entry:
    payload = json.loads(json.dumps(record.to_payload()))  # as the ledger stores it
    return Entry(seq, record.at or AT, record.KIND, record.agreement, record.flow, record.logical_date,
                 record.recipient, record.dedupe_key(), payload, "0" * 64, "")


def test_every_kind_written_today_has_a_record():
    assert set(KINDS) == {"quality", "privacy", "shared-without-consent", "pseudonym-key", "key-refused",
                          "delivery-intent", "disclosure", "withdrawal", "notice", "archive", "purge", "purge-failed",
                          "receipt", "acknowledgement", "receipt-refused", "destroyed", "legal-hold",
                          "destruction-certified", "certificate-refused", "notice-applied", "notice-refused",
                          "notice-confirmed", "notice-confirmation-refused", "certificate-issued",
                          "incident", "extract"}
    assert {type(r) for r in _samples()} == set(KINDS.values())


@pytest.mark.parametrize("record", _samples(), ids=lambda r: r.KIND)
def test_each_record_round_trips_its_payload_and_dedupe_key(record):
    entry = _as_entry(record)
    back = type(record).from_entry(entry)
    assert back.to_payload() == entry.payload
    assert back.dedupe_key() == entry.dedupe_key
    assert back.entry is entry and record_of(entry) == back


def test_dedupe_keys_are_the_strings_written_before_the_records():
    r = {type(s).__name__ + (s.store if isinstance(s, Purged) else ""): s for s in _samples()}
    assert r["Disclosure"].dedupe_key() == "disclosure:mash-referrals.A:2026-11-25:syp"
    assert r["DeliveryIntent"].dedupe_key() == "intent:disclosure:mash-referrals.A:2026-11-25:syp"
    assert r["Withdrawal"].dedupe_key() == f"withdrawal:mash-referrals:{'d' * 64}"
    assert r["Notice"].dedupe_key() == f"notice:withdrawal:mash-referrals.A:syp:{'d' * 64}:withdrawn"
    assert r["Archived"].dedupe_key() == "archive:mash-referrals.A:2026-11-25:syp:a.csv.pgp"
    assert r["Purgedsftp"].dedupe_key() == "purge:remote:mash-referrals.A:syp:inbound/mash/a.csv.pgp"
    assert r["Purgeds3"].dedupe_key() == "purge:archive:s3://b/k"
    assert Purged.local_key("runs", "/h/runs/x", "ab", AT) == f"purge:runs:/h/runs/x:ab:{AT.isoformat()}"
    assert r["PseudonymKey"].dedupe_key() == f"pseudonym-key:mash-referrals:mash:mash-2026-04:{'f' * 16}"
    assert r["PrivacyResult"].dedupe_key().startswith("privacy:mash-referrals.A:2026-11-25:")
    assert r["SharedWithoutConsent"].dedupe_key().startswith("no-consent:mash-referrals.A:2026-11-25:")
    assert r["DestructionCertified"].dedupe_key() == "destruction-certified:mash-referrals:A:2026-11-25:syp"
    assert r["CertificateRefused"].dedupe_key() == f"certificate-refused:mash-referrals:A:2026-11-25:syp:{'ef' * 32}"
    for kind in (QualityResult, RecipientKeyRefused, PurgeFailed, LegalHold):
        assert next(s for s in _samples() if isinstance(s, kind)).dedupe_key() is None


def test_a_destruction_dedupes_per_delivery_and_a_partial_one_per_rows_destroyed_so_far():
    whole, quarantined = (s for s in _samples() if isinstance(s, Destroyed))
    assert whole.dedupe_key() == "destroyed:mash-referrals:A:2026-11-25:syp"
    partial = dataclasses.replace(whole, complete=False, rows=80, held_rows=40)
    assert partial.dedupe_key() == "destroyed:mash-referrals:A:2026-11-25:syp:partial:80"
    assert Destroyed.key_for("d", 80) == partial.dedupe_key().replace("mash-referrals:A:2026-11-25:syp", "d")
    assert quarantined.dedupe_key() == ("destroyed:quarantine:/home/quarantine/mash-referrals/A/2026-11-25/cs:"
                                        "2026-11-26T04:02:57+00:00")


def test_old_entries_missing_keys_read_with_defaults():
    entry = Entry(3, AT, "disclosure", "mash", FLOW, DAY, "syp", "disclosure:x", {"rows": 4}, "0" * 64, "")
    old = Disclosure.from_entry(entry)
    assert (old.rows, old.files, old.subjects, old.subject_count, old.status) == (4, (), None, None, "delivered")
    with pytest.raises(ValueError, match="is a 'disclosure' entry, not 'purge'"):
        Purged.from_entry(entry)
    assert record_of(dataclasses.replace(entry, kind="no-longer-written")) is None


# ---------------------------------------------------------------- a ledger written by the code before records


@pytest.fixture
def old_ledger(tmp_path: Path) -> Ledger:
    """The demo's ledger of November 2026, its rows as stored, written by the code before the records.

    Made with the code of commit 5eba1e3: ``python -m transfers.devkit.demo``, then on its settings
    ``transfers consent withdraw``, ``transfers correct`` and ``transfers purge --now 2027-12-01``
    (SFTP stand-ins restarted), then ``pipeline._recipient_key`` with a wrong fingerprint and
    ``purge._Recorder.failed``: every kind written today. Synthetic data; no identifier in clear.
    """
    write_demo_ledger(tmp_path / "ledger.db")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield ledger
    ledger.close()


def test_a_ledger_written_before_the_records_still_verifies_and_reads(old_ledger):
    report = old_ledger.verify()
    assert report.ok, report.problems
    assert report.checked == 43
    records = list(old_ledger.records())
    # Every kind written in 2026-11; the exchange's kinds (receipt, acknowledgement, receipt-refused) and the
    # recipient's retention kinds (destroyed, legal-hold), the controller's certificate kinds and a notice's
    # round trip and security incidents came later.
    assert len(records) == 43 and {r.KIND for r in records} == set(KINDS) - {
        "receipt", "acknowledgement", "receipt-refused", "destroyed", "legal-hold", "destruction-certified",
        "certificate-refused", "notice-applied", "notice-refused", "notice-confirmed", "notice-confirmation-refused",
        "certificate-issued", "incident", "extract"}
    for record in records:
        # Today's classes write exactly what the old code wrote: same payload, same dedupe key.
        assert record.to_payload() == record.entry.payload, record.KIND
        assert record.dedupe_key() == record.entry.dedupe_key, record.KIND

    a, b = (next(old_ledger.records(Disclosure, flow=f"mash-referrals.{f}")) for f in "AB")
    assert (a.recipient, a.rows, a.subject_count, a.status) == ("south-yorkshire-police", 120, 120, "delivered")
    assert (b.recipient, b.rows, b.fields[:2]) == ("rotherham-childrens-services", 75, ("attendance_id", "nhs_number"))
    assert [f.remote_path for f in a.files] == ["inbound/mash/mash-referrals_A_2026-11-25.csv.pgp",
                                                "inbound/mash/mash-referrals_A_2026-11-25.manifest.json"]
    assert old_ledger.find_record(Disclosure, a.dedupe_key()) == a
    assert [q.rows for q in old_ledger.latest_records(QualityResult, 5)] == [120, 80]
    notices = list(old_ledger.records(Notice))
    assert [(n.notice, n.occasion) for n in notices] == [("withdrawal", "withdrawn"), ("correction", "correction:RECT-1")]
    assert notices[0].lookup == next(old_ledger.records(Withdrawal)).lookup
    archived = list(old_ledger.records(Archived))
    assert len(archived) == 4 and all(r.created.tzinfo is not None and r.due > r.created for r in archived)
    purged = list(old_ledger.records(Purged))
    assert len(purged) == 24 and {p.place for p in purged} >= {"remote", "archive", "staging"}
    failed = next(old_ledger.records(PurgeFailed))
    assert failed.error == "connection refused (demo)" and failed.attempted_at is not None
    refused = next(old_ledger.records(RecipientKeyRefused))
    assert refused.partner == "south-yorkshire-police" and refused.fingerprint == "0" * 40
    assert next(old_ledger.records(SharedWithoutConsent)).rows == 120
    assert next(old_ledger.records(PseudonymKey)).event == "first-use"
    assert sum(1 for _ in old_ledger.records(PrivacyResult, DeliveryIntent)) == 4


def test_the_run_names_disclosures_as_the_record_does():
    # FlowRun stays a leaf (it may not import the ledger), so the one string is checked here until
    # the pipeline asks Disclosure.key_for directly.
    from types import SimpleNamespace

    from transfers.flowrun import FlowRun

    run = SimpleNamespace(ref=SimpleNamespace(key=FLOW), ds="2026-11-25")
    assert FlowRun.disclosure_key(run, SimpleNamespace(partner="syp")) == Disclosure.key_for(FLOW, "2026-11-25", "syp")
