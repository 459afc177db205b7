"""The subject index and the withdrawals register: lookups only, recorded once, no identifier stored."""

from __future__ import annotations

from datetime import date

from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of

DAY = date(2026, 11, 24)


def test_subject_index_records_once_and_finds_by_lookup_only(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    key = lookup_key("a-long-enough-test-secret-0123456789", "mash-referrals")
    mine, other = lookup_of("943 476 5919", key), lookup_of("9991234567", key)
    assert mine == lookup_of("9434765919", key)
    row = {"event": "prepared", "agreement": "mash-referrals", "flow": "mash-referrals.A",
           "logical_date": DAY, "recipient": None, "pseudonym": "p1", "key_id": "k1", "detail": None, "ref": "r1"}
    index.record([{**row, "lookup": mine}, {**row, "lookup": other, "pseudonym": "p2"}])
    index.record([{**row, "lookup": mine}])  # a re-run adds nothing
    index.copy_prepared("r1", disclosure_ref="d1", recipient="syp")
    index.copy_prepared("r1", disclosure_ref="d1", recipient="syp")
    assert [(e.event, e.recipient, e.pseudonym) for e in index.events([mine])] == [("disclosed", "syp", "p1")]
    assert index.digest("disclosed", "d1")["subjects"] == 2
    assert index.events([lookup_of("9990000018", key)]) == []
    index.close()


def test_the_withdrawals_register_holds_lookups_per_agreement_once_and_shows_in_the_trail(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    key = lookup_key("a-long-enough-test-secret-0123456789", "mash-referrals")
    mine = lookup_of("943 476 5919", key)

    assert index.record_withdrawal("mash-referrals", mine) is True
    assert index.record_withdrawal("mash-referrals", mine) is False  # told twice, recorded once
    assert index.withdrawn("mash-referrals") == {mine}
    assert index.withdrawn("other-agreement") == set()
    assert [(e.event, e.detail) for e in index.events([mine])] == [("withdrawn", "recorded in the withdrawals register")]
    index.close()
    assert b"9434765919" not in (tmp_path / "ledger.db").read_bytes()


def test_each_withdrawal_keeps_its_own_moment(tmp_path):
    import time

    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    key = lookup_key("a-long-enough-test-secret-0123456789", "mash-referrals")
    first, second = lookup_of("9434765919", key), lookup_of("9991234567", key)
    index.record_withdrawal("mash-referrals", first)
    time.sleep(0.01)
    index.record_withdrawal("mash-referrals", second)
    [one], [two] = index.events([first]), index.events([second])
    assert one.at < two.at and one.ref == two.ref == "withdrawal:mash-referrals"
    index.close()
