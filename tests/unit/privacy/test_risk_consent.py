"""k-anonymity counting, consent register semantics and the subject index, without servers."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from transfers.agreement import DisclosureRisk, SharingBasis
from transfers.connections import ConnInfo
from transfers.consent import load_subject_lists
from transfers.errors import ConfigError, SourceError
from transfers.privacy.risk import GroupCounter, smallest_group
from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of

DAY = date(2026, 11, 24)
POLICY = DisclosureRisk(quasi_identifiers=["yob", "district"], min_k=3, on_failure="block")


def test_k_is_the_smallest_group_over_all_batches():
    a = pd.DataFrame({"yob": ["2012", "2012", "2013"], "district": ["S60", "S60", "S61"]})
    b = pd.DataFrame({"yob": ["2013", "2013", None], "district": ["S61", "S61", "S60"]})
    counter = GroupCounter(POLICY)
    counter.add(a)
    counter.add(b)
    result = counter.result()
    assert (result.k, result.groups, result.rows) == (1, 3, 6)  # the null birth year is a group of one
    assert not result.passed
    assert smallest_group(b.iloc[:2], POLICY).k == 2


def test_no_rows_means_no_k_and_nothing_to_block():
    result = smallest_group(pd.DataFrame({"yob": [], "district": []}), POLICY)
    assert result.k is None and result.passed


def _csv(tmp_path: Path, name: str, rows: list[dict]) -> str:
    pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    return name


def _conn(tmp_path: Path):
    return lambda _id: ConnInfo("lists", "fs", extra={"path": str(tmp_path)})


def test_the_latest_register_row_in_effect_on_the_logical_date_wins(tmp_path):
    path = _csv(tmp_path, "register.csv", [
        {"subject": "943 476 5919", "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": "9434765919", "status": "given", "effective": "2026-06-01"},  # consent given again
        {"subject": "9991234567", "status": "Withdrawn", "effective": "2026-11-24"},  # from the logical date
        {"subject": "9997654321", "status": "restricted", "effective": "2026-11-25"},  # not yet
        {"subject": "9990000018", "status": "restricted", "effective": "2026-03-01"},
    ])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "lists", "path": path})
    lists = load_subject_lists(basis, _conn(tmp_path), DAY)
    assert lists.withdrawn == {"9991234567"}
    assert lists.restricted == {"9990000018"}
    assert lists.reason("9434765919") is None


def test_a_declared_list_without_a_way_to_read_it_fails_closed(tmp_path):
    basis = SharingBasis(opt_outs={"kind": "csv", "connection": "lists", "path": "none.csv"})
    with pytest.raises(ConfigError, match="no connection resolver"):
        load_subject_lists(basis, None, DAY)
    with pytest.raises(SourceError, match="opt-out list is not there"):
        load_subject_lists(basis, _conn(tmp_path), DAY)


def test_a_missing_column_is_named(tmp_path):
    path = _csv(tmp_path, "opt.csv", [{"nhs": "9434765919"}])
    basis = SharingBasis(opt_outs={"kind": "csv", "connection": "lists", "path": path, "status": None,
                                   "effective": None})
    with pytest.raises(ConfigError, match="'subject' not found"):
        load_subject_lists(basis, _conn(tmp_path), DAY)


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


def test_the_run_summary_names_reasons_counts_and_k_but_no_values():
    from transfers.cli.privacy import privacy_summary

    line = privacy_summary({"excluded": {"withdrawn": 2, "opted_out": 1}, "basis": "consent",
                            "deceased": {"handling": "send_with_caution", "excluded": 0, "sent_with_caution": 1},
                            "k": {"k": 2, "quasi_identifiers": ["yob", "district"], "passed": False, "min_k": 3}},
                           {"sent": 1, "already_sent": 0})
    assert line == ("privacy: excluded 2 withdrawn, 1 opted out; 1 deceased sent with caution; "
                    "k=2 on yob, district (below min_k 3); 1 withdrawal notice(s) sent")
    assert privacy_summary({"basis": "consent", "excluded": {}}) == ""


def test_column_names_with_spaces_and_dates_as_dates_are_read(tmp_path):
    pd.DataFrame({"NHS Number": ["943 476 5919"], "Opted out on": ["2026-02-01T09:00:00"]}).to_csv(
        tmp_path / "opt.csv", index=False)
    basis = SharingBasis(opt_outs={"kind": "csv", "connection": "lists", "path": "opt.csv", "subject": "NHS Number",
                                   "status": None, "effective": "Opted out on"})
    assert load_subject_lists(basis, _conn(tmp_path), DAY).opted_out == {"9434765919"}


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


def test_a_notified_withdrawal_reads_as_such_in_the_run_summary():
    from transfers.cli.privacy import privacy_summary

    line = privacy_summary({"excluded": {"withdrawn_notified": 1}, "basis": "statutory",
                            "opt_outs_overridden": {"withdrawn_notified": 2}})
    assert line == ("privacy: excluded 1 withdrawn (notified); sent despite 2 withdrawn (notified); "
                    "shared without consent (recorded in the ledger)")
