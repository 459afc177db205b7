"""Consent register vocabulary and list columns: nothing guessed, wrong names are configuration errors.

CSV registers are real files and the SQL cases a real SQLite database; the
PostgreSQL cases are in tests/integration/test_consent_lists_postgres.py.
"""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from transfers.agreement import SharingBasis, SubjectSource
from transfers.connections import ConnInfo
from transfers.consent import load_subject_lists, probe_subject_lists
from transfers.errors import ConfigError, SourceError, SourceUnavailable

DAY = date(2026, 11, 24)


def _register(tmp_path: Path, rows: list[dict], name: str = "register.csv") -> str:
    pd.DataFrame(rows).to_csv(tmp_path / name, index=False)
    return name


def _files(tmp_path: Path):
    return lambda _id: ConnInfo("rft_exports", "fs", extra={"path": str(tmp_path)})


def test_a_register_maps_its_own_words_to_withdrawn_restricted_and_given(tmp_path):
    path = _register(tmp_path, [
        {"subject": "9434765919", "status": "W", "effective": "2026-01-01"},
        {"subject": "9991234567", "status": "Consent Withdrawn", "effective": "2026-01-01"},
        {"subject": "9990000018", "status": "R", "effective": "2026-01-01"},
        {"subject": "9997654321", "status": "W", "effective": "2026-01-01"},
        {"subject": "9997654321", "status": "Y", "effective": "2026-02-01"},  # consent given again
    ])
    basis = SharingBasis(consent_register={
        "kind": "csv", "connection": "rft_exports", "path": path,
        "statuses": {"withdrawn": ["W", "consent withdrawn"], "restricted": ["R"], "given": ["Y"]}})

    lists = load_subject_lists(basis, _files(tmp_path), DAY)

    assert lists.withdrawn == {"9434765919", "9991234567"}
    assert lists.restricted == {"9990000018"}
    assert lists.reason("9997654321") is None


def test_a_status_the_flow_does_not_map_stops_the_run_naming_word_count_and_list_not_subject(tmp_path):
    path = _register(tmp_path, [
        {"subject": "9434765919", "status": "withdrawn", "effective": "2026-01-01"},
        {"subject": "9991234567", "status": "W", "effective": "2026-01-01"},
        {"subject": "9990000018", "status": "W", "effective": "2026-01-01"},
        {"subject": "9997654321", "status": "yes", "effective": "2026-01-01"},
    ])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": path})

    with pytest.raises(ConfigError) as caught:
        load_subject_lists(basis, _files(tmp_path), DAY)

    message = str(caught.value)
    assert "consent register (csv 'register.csv', connection 'rft_exports')" in message
    assert "3 row(s) have a status the flow does not map: 'W' (2 rows), 'yes' (1 row)" in message
    assert "consent.consent_register.statuses" in message
    for subject in ("9434765919", "9991234567", "9990000018", "9997654321"):
        assert subject not in message


def test_a_status_column_holding_identifiers_is_refused_without_showing_them(tmp_path):
    path = _register(tmp_path, [{"subject": "9434765919", "nhs": "9434765919", "effective": "2026-01-01"}])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": path,
                                           "status": "nhs"})

    with pytest.raises(ConfigError, match="1 distinct values, not shown") as caught:
        load_subject_lists(basis, _files(tmp_path), DAY)
    assert "9434765919" not in str(caught.value)


def test_a_blank_status_is_not_read_as_given(tmp_path):
    path = _register(tmp_path, [{"subject": "9434765919", "status": "", "effective": "2026-01-01"}])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": path})

    with pytest.raises(ConfigError, match=r"'\(blank\)' \(1 row\)"):
        load_subject_lists(basis, _files(tmp_path), DAY)


def test_statuses_in_the_agreement_are_checked_at_load():
    with pytest.raises(ValidationError, match="listed under both withdrawn and given"):
        SubjectSource(kind="csv", connection="x", path="r.csv", statuses={"withdrawn": ["W"], "given": ["w"]})
    with pytest.raises(ValidationError, match="Input should be 'withdrawn', 'restricted' or 'given'"):
        SubjectSource(kind="csv", connection="x", path="r.csv", statuses={"revoked": ["X"]})
    with pytest.raises(ValidationError, match="this list has none"):
        SubjectSource(kind="csv", connection="x", path="o.csv", status=None, statuses={"withdrawn": ["W"]})
    assert SubjectSource(kind="csv", connection="x", path="r.csv").statuses == {
        "withdrawn": ["withdrawn"], "restricted": ["restricted"], "given": ["given"]}


def test_a_missing_csv_column_is_named_by_the_probe_and_by_the_run(tmp_path):
    path = _register(tmp_path, [{"nhs": "9434765919", "status": "withdrawn", "effective": "2026-01-01"}])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": path})

    [problem] = probe_subject_lists(basis, _files(tmp_path))
    assert "consent register (csv 'register.csv', connection 'rft_exports'): column(s) 'subject' not found" in problem
    assert "9434765919" not in problem
    with pytest.raises(ConfigError, match="column\\(s\\) 'subject' not found"):
        load_subject_lists(basis, _files(tmp_path), DAY)


def test_an_empty_csv_register_is_a_missing_column_not_no_withdrawals(tmp_path):
    (tmp_path / "register.csv").write_text("")
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": "register.csv"})

    with pytest.raises(ConfigError, match="has: no columns"):
        load_subject_lists(basis, _files(tmp_path), DAY)


def test_the_probe_reports_nothing_for_good_lists(tmp_path):
    register = _register(tmp_path, [{"subject": "9434765919", "status": "withdrawn", "effective": "2026-01-01"}])
    opt_outs = _register(tmp_path, [{"nhs": "9991234567"}], "opt.csv")
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": register},
                         opt_outs={"kind": "csv", "connection": "rft_exports", "path": opt_outs, "subject": "nhs",
                                   "status": None, "effective": None})

    assert probe_subject_lists(basis, _files(tmp_path)) == []


def _sqlite(tmp_path: Path):
    db = tmp_path / "case.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE consent (nhs TEXT, state TEXT, since TEXT)")
        conn.execute("INSERT INTO consent VALUES ('9434765919', 'withdrawn', '2026-01-01')")
    conn.close()
    return lambda _id: ConnInfo("case_db", "sqlite", host=str(db))


@pytest.mark.parametrize(("table", "columns", "wanted"), [
    ("consnet", {}, "table 'consnet' not found"),
    ("consent", {"status": "status"}, "column(s) 'status' not found (has: nhs, state, since)"),
])
def test_a_wrong_sqlite_table_or_column_is_a_config_error_not_a_temporary_failure(tmp_path, table, columns, wanted):
    # SQLite reports "no such table" as an OperationalError, which used to read as "try again".
    source = {"kind": "sql", "connection": "case_db", "table": table, "subject": "nhs", "status": "state",
              "effective": "since"} | columns
    basis = SharingBasis(consent_register=source)
    connection = _sqlite(tmp_path)

    with pytest.raises(ConfigError) as caught:
        load_subject_lists(basis, connection, DAY)
    assert not isinstance(caught.value, SourceUnavailable)
    assert wanted in str(caught.value)
    assert [wanted in p for p in probe_subject_lists(basis, connection)] == [True]


def test_the_probe_reports_an_unresolvable_connection_and_an_unreachable_database(tmp_path):
    basis = SharingBasis(consent_register={"kind": "sql", "connection": "case_db", "table": "consent"},
                         opt_outs={"kind": "csv", "connection": "gone", "path": "o.csv", "status": None})

    def connection(conn_id: str) -> ConnInfo:
        if conn_id == "gone":
            raise ConfigError("connection 'gone' is not defined")
        return ConnInfo("case_db", "postgres", host="127.0.0.1", port=1, login="nobody", schema="none")

    problems = probe_subject_lists(basis, connection)
    assert len(problems) == 2
    assert "connection 'case_db': cannot read the consent register" in problems[0]
    assert problems[1] == "connection 'gone' is not defined"


def test_a_register_without_a_status_column_lists_withdrawals_not_nobody(tmp_path):
    path = _register(tmp_path, [{"subject": "9434765919", "effective": "2026-01-01"}])
    basis = SharingBasis(consent_register={"kind": "csv", "connection": "rft_exports", "path": path, "status": None})

    assert load_subject_lists(basis, _files(tmp_path), DAY).withdrawn == {"9434765919"}


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


def test_column_names_with_spaces_and_dates_as_dates_are_read(tmp_path):
    pd.DataFrame({"NHS Number": ["943 476 5919"], "Opted out on": ["2026-02-01T09:00:00"]}).to_csv(
        tmp_path / "opt.csv", index=False)
    basis = SharingBasis(opt_outs={"kind": "csv", "connection": "lists", "path": "opt.csv", "subject": "NHS Number",
                                   "status": None, "effective": "Opted out on"})
    assert load_subject_lists(basis, _conn(tmp_path), DAY).opted_out == {"9434765919"}


def test_a_batch_of_subjects_gets_the_reason_each_would_get_alone():
    import pandas as pd

    from transfers.consent import SubjectLists

    lists = SubjectLists(withdrawn={"1", "2"}, restricted={"2", "3"}, opted_out={"3", "4", "1"})
    subjects = pd.Series(["1", "2", "3", "4", "5", ""], index=[9, 8, 7, 6, 5, 4], dtype=object)
    assert lists.reasons(subjects).tolist() == [lists.reason(s) for s in subjects]
    assert lists.reasons(subjects).index.tolist() == [9, 8, 7, 6, 5, 4]
    assert SubjectLists().reasons(subjects).tolist() == [None] * 6
