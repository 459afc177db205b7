"""The ledger on a real PostgreSQL: triggers, tampering, anchor, concurrent appends.

Each test gets its own schema, dropped afterwards, so tests never share a chain.
Tampering is done as a database owner would: with raw SQL, disabling or
dropping the trigger first.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.ledger_workers import check_concurrent_result, run_concurrent_appends
from transfers.errors import LedgerUnavailable
from transfers.ledger import GENESIS_HASH, Ledger

pytestmark = pytest.mark.integration

PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"


@pytest.fixture(scope="module")
def admin():
    """A plain engine on the test database, or skip (fail under CI) when PostgreSQL is not there."""
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        reason = f"PostgreSQL at {PG_URL} is not reachable: {type(exc).__name__}: {str(exc)[:200]}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture
def schema(admin):
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"
    sql(admin, f'CREATE SCHEMA "{name}"')
    yield name
    sql(admin, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def anchor(tmp_path: Path) -> Path:
    return tmp_path / "ledger.head"


@pytest.fixture
def ledger(schema, anchor):
    with Ledger(PG_URL, anchor_path=anchor, schema=schema) as opened:
        yield opened


def sql(admin, *statements: str) -> None:
    """Run raw SQL in one transaction, as someone with database access could."""
    import sqlalchemy as sa

    with admin.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))


def scalar(admin, statement: str):
    import sqlalchemy as sa

    with admin.connect() as conn:
        return conn.execute(sa.text(statement)).scalar_one()


def fill(ledger: Ledger, n: int):
    return [ledger.append("quality", agreement="mash", flow="mash/a", payload={"i": i})[0] for i in range(n)]


def entry_problems(report) -> list[str]:
    return [p for p in report.problems if p.startswith("entry ")]


def test_fresh_ledger_verifies(ledger, admin, schema):
    report = ledger.verify()
    assert report.ok and report.checked == 0
    assert ledger.head() is None
    assert scalar(admin, f"SELECT count(*) FROM \"{schema}\".ledger_entries") == 0


def test_chain_links_and_values_survive_the_round_trip(ledger):
    at = datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)
    first, _ = ledger.append("disclosure", agreement="mash", flow="mash/a", logical_date=date(2024, 5, 1),
                             recipient="syp", dedupe_key="d:1", payload={"rows": 40, "files": [{"n": "é"}]}, at=at)
    rest = fill(ledger, 2)
    stored = list(ledger.entries())
    assert stored == [first, *rest]
    assert stored[0].prev_hash == GENESIS_HASH and stored[0].at == at and stored[0].at.tzinfo == UTC
    assert stored[1].prev_hash == stored[0].hash and stored[2].prev_hash == stored[1].hash
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.checked == 3


def test_dedupe_returns_existing_entry_and_writes_no_row(ledger, admin, schema):
    first, created = ledger.append("disclosure", agreement="mash", dedupe_key="disclosure:mash/a:2024-05-01:syp",
                                   payload={"rows": 40})
    again, created_again = ledger.append("disclosure", agreement="mash",
                                         dedupe_key="disclosure:mash/a:2024-05-01:syp", payload={"rows": 41})
    assert (created, created_again) == (True, False)
    assert again == first
    assert scalar(admin, f'SELECT count(*) FROM "{schema}".ledger_entries') == 1


def test_triggers_reject_update_delete_and_truncate(ledger, admin, schema):
    import sqlalchemy as sa

    fill(ledger, 3)
    table = f'"{schema}".ledger_entries'
    for statement, op in [
        (f"UPDATE {table} SET payload = '{{\"i\": 99}}' WHERE seq = 2", "UPDATE"),
        (f"DELETE FROM {table} WHERE seq = 3", "DELETE"),
        (f"TRUNCATE {table}", "TRUNCATE"),
    ]:
        with pytest.raises(sa.exc.DBAPIError, match=f"append-only: {op} refused"):
            sql(admin, statement)
    assert [e.payload["i"] for e in ledger.entries()] == [0, 1, 2]
    assert ledger.verify().ok


def test_edited_row_fails_verify_naming_its_seq(ledger, admin, schema):
    fill(ledger, 5)
    table = f'"{schema}".ledger_entries'
    sql(admin, f"DROP TRIGGER ledger_entries_no_update_delete ON {table}",
        f"UPDATE {table} SET payload = '{{\"i\": 2, \"rows\": 1}}' WHERE seq = 3")
    report = ledger.verify()
    assert entry_problems(report) == ["entry 3: hash does not match its contents (edited after it was written?)"]
    assert any("ledger_entries_no_update_delete" in p and "missing or disabled" in p for p in report.problems)


def test_disabled_trigger_is_reported(ledger, admin, schema):
    fill(ledger, 1)
    sql(admin, f'ALTER TABLE "{schema}".ledger_entries DISABLE TRIGGER ledger_entries_no_truncate')
    problems = ledger.verify().problems
    assert len(problems) == 1 and "ledger_entries_no_truncate" in problems[0]
    ledger.install_guards()
    assert ledger.verify().ok


def test_cut_tail_is_caught_by_the_anchor(ledger, admin, schema, anchor):
    fill(ledger, 5)
    table = f'"{schema}".ledger_entries'
    sql(admin, f"ALTER TABLE {table} DISABLE TRIGGER ledger_entries_no_update_delete",
        f"DELETE FROM {table} WHERE seq >= 4",
        f"ALTER TABLE {table} ENABLE TRIGGER ledger_entries_no_update_delete")
    assert json.loads(anchor.read_text())["seq"] == 5
    assert ledger.verify().problems == ["ledger ends at entry 3 but its anchor says 5 (entries cut off the end?)"]
    with Ledger(PG_URL, schema=schema) as unanchored:  # the chain alone cannot tell
        assert unanchored.verify().ok


def test_entries_filters(ledger):
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    for kind, agreement, flow, hours in [("disclosure", "mash", "mash/a", 0), ("quality", "mash", "mash/a", 1),
                                         ("disclosure", "mash", "mash/b", 2), ("purge", "other", None, 3)]:
        ledger.append(kind, agreement=agreement, flow=flow, at=t0 + timedelta(hours=hours))

    def seqs(**filters) -> list[int]:
        return [e.seq for e in ledger.entries(**filters)]

    assert seqs(kind="disclosure") == [1, 3]
    assert seqs(flow="mash/a") == [1, 2]
    assert seqs(agreement="other") == [4]
    assert seqs(since=t0 + timedelta(hours=1), until=t0 + timedelta(hours=3)) == [2, 3]


def test_schemas_are_separate_ledgers(ledger, admin):
    fill(ledger, 2)
    other = f"ledger_test_{uuid.uuid4().hex[:12]}"
    sql(admin, f'CREATE SCHEMA "{other}"')
    try:
        with Ledger(PG_URL, schema=other) as second:
            assert second.append("quality", agreement="mash")[0].seq == 1
    finally:
        sql(admin, f'DROP SCHEMA "{other}" CASCADE')
    assert ledger.head().seq == 2


def test_missing_schema_and_unreachable_server_are_clear(admin):
    from transfers.errors import ConfigError

    with pytest.raises(ConfigError, match="schema 'no_such_schema' does not exist"):
        Ledger(PG_URL, schema="no_such_schema")
    with pytest.raises(LedgerUnavailable) as caught:
        Ledger("postgresql+psycopg2://postgres:hunter2@127.0.0.1:1/test")
    assert "hunter2" not in str(caught.value)
    assert "postgres:***@127.0.0.1:1/test" in str(caught.value) and caught.value.retriable


def test_concurrent_appends_from_several_processes(schema, anchor, tmp_path):
    run_concurrent_appends(PG_URL, anchor, tmp_path / "work", workers=6, each=25, schema=schema)
    with Ledger(PG_URL, anchor_path=anchor, schema=schema) as ledger:
        check_concurrent_result(ledger, anchor, workers=6, each=25)


def test_typed_records_round_trip_on_postgresql(ledger):
    from transfers.ledger.records import Disclosure, PurgeFailed, RemoteFile, Withdrawal

    day = date(2026, 11, 25)
    sent = Disclosure(agreement="mash", flow="mash.A", logical_date=day, recipient="syp", rows=3,
                      purposes=("safeguarding",), files=(RemoteFile("in/a.pgp", 10, "ab" * 32, "delivered"),))
    ledger.record(sent)
    ledger.record(Withdrawal(agreement="mash", lookup="d" * 64))
    again = ledger.record(sent)
    assert again[1] is False  # the same dedupe key as before the records existed
    ledger.record(PurgeFailed(agreement="mash", flow="mash.A", place="remote", path="in/a.pgp", error="refused"))

    read = list(ledger.records(Disclosure, PurgeFailed, flow="mash.A"))
    assert [type(r).__name__ for r in read] == ["Disclosure", "PurgeFailed"]
    assert read[0].to_payload() == sent.to_payload() and read[0].seq == 1 and read[0].files[0].size == 10
    assert ledger.find_record(Disclosure, "disclosure:mash.A:2026-11-25:syp") == read[0]
    assert [r.KIND for r in ledger.records()] == ["disclosure", "withdrawal", "purge-failed"]
    assert ledger.verify().ok
