"""A consent register or opt-out list with a wrong table or column, against the real PostgreSQL.

Each test uses the throwaway source database of ``pg_source``: a wrong name is a
configuration error (exit 2, no retry) at run time, and ``transfers check`` and
``probe_subject_lists`` (for ``validate --connect``) find it without reading a row.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.privacy_world import edit_agreement, flow_of
from transfers.agreement import SharingBasis
from transfers.connections import ConnInfo
from transfers.consent import load_subject_lists, probe_subject_lists
from transfers.errors import ConfigError

pytestmark = pytest.mark.integration


@pytest.fixture
def case_db(pg_source):
    url, name = pg_source
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS consent_states"))
        conn.execute(sa.text("CREATE TABLE consent_states (nhs text, state text, since date)"))
        conn.execute(sa.text("INSERT INTO consent_states VALUES ('9434765919', 'W', '2026-01-01')"))
    engine.dispose()
    conn_info = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=name)
    return lambda _id: conn_info


REGISTER = {"kind": "sql", "connection": "cs_case_db", "table": "consent_states", "subject": "nhs",
            "status": "state", "effective": "since", "statuses": {"withdrawn": ["W"], "given": ["G"]}}


@pytest.mark.parametrize(("change", "wanted"), [
    ({"table": "consent_state"}, "table 'consent_state' not found"),
    ({"table": "cases.consent_states"}, "table 'cases.consent_states' not found"),
    ({"status": "status"}, "column(s) 'status' not found (has: nhs, state, since)"),
    ({"subject": "NHS"}, "column(s) 'NHS' not found"),
])
def test_a_wrong_table_or_column_is_a_config_error_at_run_time_and_in_the_probe(case_db, change, wanted):
    basis = SharingBasis(consent_register=REGISTER | change)

    with pytest.raises(ConfigError) as caught:
        load_subject_lists(basis, case_db, LOGICAL_DATE)
    assert wanted in str(caught.value)
    assert "connection 'cs_case_db'" in str(caught.value)
    assert "9434765919" not in str(caught.value)

    [problem] = probe_subject_lists(basis, case_db)
    assert wanted in problem


def test_the_probe_reads_no_row_and_passes_a_good_register(case_db):
    opt_outs = {k: v for k, v in REGISTER.items() if k != "statuses"} | {"status": None, "effective": None}
    basis = SharingBasis(consent_register=REGISTER, opt_outs=opt_outs)
    assert probe_subject_lists(basis, case_db) == []
    lists = load_subject_lists(basis, case_db, LOGICAL_DATE)
    assert lists.withdrawn == {"9434765919"}
    assert lists.opted_out == {"9434765919"}


def _wrong_opt_outs(data: dict) -> None:
    flow_of(data, "A")["consent"]["opt_outs"] = {"kind": "sql", "connection": "cs_case_db", "table": "opt_outz",
                                                 "subject": "nhs", "status": None, "effective": None}


def test_a_run_with_a_wrong_opt_out_table_exits_2_and_sends_nothing(cli, world):
    edit_agreement(world, _wrong_opt_outs)

    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 2, result.output
    assert "opt-out list (sql 'opt_outz', connection 'cs_case_db'): table 'opt_outz' not found" in result.stderr
    assert "temporary failure" not in result.output
    assert world.delivered("inbound/mash") == []


def test_check_reports_a_wrong_opt_out_table_with_exit_2(cli, world):
    edit_agreement(world, _wrong_opt_outs)

    result = cli("check", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 2, result.output
    assert "table 'opt_outz' not found" in result.stderr
    assert "1 consent list problem(s)" in result.stderr


def test_a_run_whose_register_holds_an_unmapped_status_exits_2_naming_word_count_and_list(cli, world, case_db):
    register = {k: v for k, v in REGISTER.items() if k != "statuses"}  # the default words: W is not one
    edit_agreement(world, lambda d: flow_of(d, "A")["consent"].__setitem__("consent_register", register))

    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 2, result.output
    assert ("consent register (sql 'consent_states', connection 'cs_case_db'): 1 row(s) have a status the flow "
            "does not map: 'W' (1 row)") in result.stderr
    assert "9434765919" not in result.output
    assert world.delivered("inbound/mash") == []
