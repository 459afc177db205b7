"""The ledger on SQLite: chain, dedupe, triggers, anchor, filters, concurrent appends.

Tampering is done the way a person with file access would do it: with the
``sqlite3`` module, dropping the trigger first.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

import transfers.ledger.store as ledger_store
from tests.ledger_workers import check_concurrent_result, run_concurrent_appends
from transfers.errors import ConfigError, LedgerTampered, LedgerUnavailable
from transfers.ledger import GENESIS_HASH, Entry, Ledger, chain_hash


@pytest.fixture
def paths(tmp_path: Path) -> tuple[str, Path, Path]:
    db = tmp_path / "ledger.db"
    return f"sqlite:///{db}", db, tmp_path / "ledger.head"


@pytest.fixture
def ledger(paths):
    url, _db, anchor = paths
    with Ledger(url, anchor_path=anchor) as opened:
        yield opened


def fill(ledger: Ledger, n: int) -> list[Entry]:
    return [ledger.append("quality", agreement="mash", flow="mash/a", payload={"i": i})[0] for i in range(n)]


def raw(db: Path, *statements: str) -> None:
    """Run SQL on the file directly, as someone with access to it could."""
    conn = sqlite3.connect(db)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
    finally:
        conn.close()


def entry_problems(report) -> list[str]:
    return [p for p in report.problems if p.startswith("entry ")]


# ----------------------------------------------------------------- chain


def test_fresh_ledger_verifies_and_is_empty(ledger, paths):
    report = ledger.verify()
    assert report.ok and report.checked == 0 and report.problems == []
    assert ledger.head() is None
    assert list(ledger.entries()) == []
    assert not paths[2].exists()  # nothing anchored until something is recorded


def test_chain_links_each_entry_to_the_one_before(ledger):
    entries = fill(ledger, 4)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH == "0" * 64
    for before, after in zip(entries, entries[1:], strict=False):
        assert after.prev_hash == before.hash
    assert len({e.hash for e in entries}) == 4
    assert ledger.head() == entries[-1]
    assert list(ledger.entries()) == entries  # what append returned is what is stored
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.checked == 4 and report.head == entries[-1]


def test_hash_is_sha256_of_prev_hash_and_canonical_json(ledger):
    at = datetime(2024, 5, 1, 22, 30, 0, 123456, tzinfo=timezone(timedelta(hours=1)))
    entry, _ = ledger.append("disclosure", agreement="mash", flow="mash/a", logical_date=date(2024, 5, 1),
                             recipient="syp", dedupe_key="d:1", payload={"rows": 3, "b": ["é"]}, at=at)
    content = {
        "seq": 1, "at": "2024-05-01T21:30:00.123456+00:00", "kind": "disclosure", "agreement": "mash",
        "flow": "mash/a", "logical_date": "2024-05-01", "recipient": "syp", "dedupe_key": "d:1",
        "payload": {"rows": 3, "b": ["é"]},
    }
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert entry.hash == hashlib.sha256(("0" * 64 + text).encode()).hexdigest()
    assert entry.at == datetime(2024, 5, 1, 21, 30, 0, 123456, tzinfo=UTC) and entry.at.tzinfo == UTC
    assert ledger.find("d:1").hash == entry.hash  # read back from the table, still the same hash


def test_reopening_continues_the_same_chain(paths):
    url, db, anchor = paths
    with Ledger(url, anchor_path=anchor) as first:
        fill(first, 2)
    with Ledger(url, anchor_path=anchor) as second:
        entry, created = second.append("purge", agreement="mash")
        assert created and entry.seq == 3
        assert second.verify().ok
    conn = sqlite3.connect(db)
    triggers = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'").fetchone()[0]
    conn.close()
    assert triggers == 2


# ----------------------------------------------------------------- dedupe


def test_dedupe_key_returns_existing_entry_and_writes_nothing(ledger, paths):
    first, created = ledger.append("disclosure", agreement="mash", dedupe_key="disclosure:mash/a:2024-05-01:syp",
                                   payload={"rows": 40})
    fill(ledger, 1)
    again, created_again = ledger.append("disclosure", agreement="mash",
                                         dedupe_key="disclosure:mash/a:2024-05-01:syp", payload={"rows": 41})
    assert created is True and created_again is False
    assert again == first and again.payload == {"rows": 40}  # the re-run's payload is not recorded
    assert count(paths[1]) == 2
    assert ledger.head().seq == 2
    assert ledger.find("disclosure:mash/a:2024-05-01:syp") == first
    assert ledger.find("never-recorded") is None
    assert ledger.verify().ok


def test_dedupe_key_is_unique_in_the_table_itself(ledger, paths):
    ledger.append("disclosure", agreement="mash", dedupe_key="k")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        raw(paths[1], "INSERT INTO ledger_entries (seq, at, kind, agreement, dedupe_key, payload, prev_hash, hash) "
                      "VALUES (2, '2024-01-01 00:00:00.000000', 'x', 'a', 'k', '{}', 'p', 'h')")


# ----------------------------------------------------------------- append-only


def test_triggers_reject_update_and_delete(ledger, paths):
    fill(ledger, 3)
    before = list(ledger.entries())
    with pytest.raises(sqlite3.IntegrityError, match="append-only: UPDATE refused"):
        raw(paths[1], "UPDATE ledger_entries SET payload = '{\"i\": 99}' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        raw(paths[1], "DELETE FROM ledger_entries WHERE seq = 3")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: DELETE refused"):
        raw(paths[1], "DELETE FROM ledger_entries")
    assert list(ledger.entries()) == before


def test_edited_row_fails_verify_naming_its_seq(ledger, paths):
    fill(ledger, 5)
    raw(paths[1], "DROP TRIGGER ledger_entries_no_update",
        "UPDATE ledger_entries SET payload = '{\"i\":0,\"rows\":1}' WHERE seq = 3")
    report = ledger.verify()
    assert not report.ok
    assert entry_problems(report) == ["entry 3: hash does not match its contents (edited after it was written?)"]
    assert any("ledger_entries_no_update" in p and "missing" in p for p in report.problems)
    with pytest.raises(LedgerTampered, match="entry 3"):
        report.raise_if_failed()


def test_edit_with_recomputed_hash_breaks_the_next_link(ledger, paths):
    entries = fill(ledger, 4)
    forged = Entry(**{**entries[1].__dict__, "payload": {"i": 1, "rows": 0}, "hash": ""})
    raw(paths[1], "DROP TRIGGER ledger_entries_no_update",
        f"UPDATE ledger_entries SET payload = '{json.dumps(forged.payload)}', "
        f"hash = '{forged.expected_hash()}' WHERE seq = 2")
    problems = entry_problems(ledger.verify())
    assert len(problems) == 1 and problems[0].startswith("entry 3: prev_hash does not link")


def test_deleted_middle_row_is_named(ledger, paths):
    fill(ledger, 4)
    raw(paths[1], "DROP TRIGGER ledger_entries_no_delete", "DELETE FROM ledger_entries WHERE seq = 2")
    problems = entry_problems(ledger.verify())
    assert any(p.startswith("entry 3: follows entry 1; entries 2..2 are missing") for p in problems)
    assert any(p.startswith("entry 3: prev_hash does not link") for p in problems)


def test_missing_trigger_is_reported_and_can_be_reinstalled(ledger, paths):
    fill(ledger, 1)
    raw(paths[1], "DROP TRIGGER ledger_entries_no_delete")
    report = ledger.verify()
    assert not report.ok and entry_problems(report) == []
    assert "append-only trigger ledger_entries_no_delete" in report.problems[0]
    ledger.install_guards()
    assert ledger.verify().ok
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        raw(paths[1], "DELETE FROM ledger_entries")


# ----------------------------------------------------------------- anchor


def test_anchor_holds_the_head_after_each_append(ledger, paths):
    anchor = paths[2]
    for n in range(1, 4):
        entry, _ = ledger.append("quality", agreement="mash", payload={"n": n})
        data = json.loads(anchor.read_text())
        assert (data["seq"], data["hash"]) == (entry.seq, entry.hash) == (ledger.head().seq, ledger.head().hash)
    assert [p.name for p in anchor.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_cut_tail_is_caught_by_the_anchor_only(paths):
    url, db, anchor = paths
    with Ledger(url, anchor_path=anchor) as ledger:
        fill(ledger, 5)
        raw(db, "DROP TRIGGER ledger_entries_no_delete", "DELETE FROM ledger_entries WHERE seq >= 4")
        ledger.install_guards()  # hide the trigger drop too: only the anchor is left to tell
        report = ledger.verify()
        assert report.problems == ["ledger ends at entry 3 but its anchor says 5 (entries cut off the end?)"]
        assert report.checked == 3
    # The chain alone cannot tell: this is why the anchor exists.
    with Ledger(url) as unanchored:
        assert unanchored.verify().ok


def test_cut_then_appended_ledger_does_not_move_the_anchor_back(ledger, paths):
    fill(ledger, 5)
    raw(paths[1], "DROP TRIGGER ledger_entries_no_delete", "DELETE FROM ledger_entries WHERE seq >= 4")
    ledger.install_guards()
    entry, _ = ledger.append("quality", agreement="mash")  # a new seq 4, chained to seq 3
    assert entry.seq == 4
    assert json.loads(paths[2].read_text())["seq"] == 5
    assert ledger.verify().problems == ["ledger ends at entry 4 but its anchor says 5 (entries cut off the end?)"]
    fill(ledger, 1)  # seq 5 again, with a different hash from the anchored one
    assert ledger.verify().problems == [
        "entry 5: hash differs from the one anchored outside the ledger (the ledger was rewritten from here on?)"
    ]


def test_deleted_or_garbled_anchor_is_reported(ledger, paths):
    fill(ledger, 2)
    paths[2].unlink()
    assert ledger.verify().problems == [f"anchor {paths[2]} is missing but the ledger has 2 entries (deleted?)"]
    paths[2].write_text("{not json")
    assert ledger.verify().problems[0].startswith(f"anchor {paths[2]} is unreadable")
    fill(ledger, 1)
    assert paths[2].read_text() == "{not json"  # kept as evidence, not overwritten


def test_heads_recorded_elsewhere_are_checked(ledger):
    entries = fill(ledger, 3)
    assert ledger.verify(heads=[(2, entries[1].hash), (3, entries[2].hash)]).ok
    assert ledger.verify(heads=[(2, "f" * 64)]).problems[0].startswith("entry 2: hash differs")
    assert ledger.verify(heads=[(9, "f" * 64)]).problems == [
        "ledger ends at entry 3 but a recorded head says 9 (entries cut off the end?)"
    ]


# ----------------------------------------------------------------- reading


def test_entries_filters_in_seq_order(ledger, monkeypatch):
    monkeypatch.setattr(ledger_store, "_PAGE", 2)  # several pages, to prove paging keeps order and filters
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    specs = [
        ("disclosure", "mash", "mash/a", 0), ("quality", "mash", "mash/a", 1), ("disclosure", "mash", "mash/b", 2),
        ("purge", "other", "other/a", 3), ("disclosure", "mash", "mash/a", 4), ("disclosure", "other", None, 5),
    ]
    for kind, agreement, flow, hours in specs:
        ledger.append(kind, agreement=agreement, flow=flow, at=t0 + timedelta(hours=hours))

    def seqs(**filters) -> list[int]:
        return [e.seq for e in ledger.entries(**filters)]

    assert seqs() == [1, 2, 3, 4, 5, 6]
    assert seqs(kind="disclosure") == [1, 3, 5, 6]
    assert seqs(kind="disclosure", flow="mash/a") == [1, 5]
    assert seqs(agreement="other") == [4, 6]
    assert seqs(since=t0 + timedelta(hours=2)) == [3, 4, 5, 6]
    assert seqs(until=t0 + timedelta(hours=2)) == [1, 2]  # until is exclusive
    # A different offset means the same moment.
    plus2 = timezone(timedelta(hours=2))
    assert seqs(since=(t0 + timedelta(hours=1)).astimezone(plus2), until=(t0 + timedelta(hours=4)).astimezone(plus2),
                kind="disclosure") == [3]
    assert seqs(kind="notice") == []


def test_latest_returns_the_last_matching_entries_in_seq_order(ledger):
    for i in range(7):
        ledger.append("quality" if i % 2 == 0 else "disclosure", agreement="mash", flow="mash/a", payload={"i": i})
    ledger.append("quality", agreement="mash", flow="mash/b", payload={"i": 7})

    assert [e.payload["i"] for e in ledger.latest(2, kind="quality", flow="mash/a")] == [4, 6]
    assert [e.payload["i"] for e in ledger.latest(10, kind="quality", flow="mash/a")] == [0, 2, 4, 6]
    assert [e.seq for e in ledger.latest(3)] == [6, 7, 8]
    assert ledger.latest(5, kind="notice") == []


def test_entries_are_streamed_not_loaded(ledger, monkeypatch):
    monkeypatch.setattr(ledger_store, "_PAGE", 3)
    fill(ledger, 7)
    stream = ledger.entries()
    assert next(stream).seq == 1
    ledger.append("purge", agreement="mash")  # nothing is held open while the caller works
    assert [e.seq for e in stream] == [2, 3, 4, 5, 6, 7, 8]


def test_naive_datetimes_are_refused(ledger):
    with pytest.raises(ValueError, match="no timezone"):
        ledger.entries(since=datetime(2024, 1, 1))  # at the call, not at the first next()
    with pytest.raises(ValueError, match="no timezone"):
        ledger.append("quality", agreement="mash", at=datetime(2024, 1, 1))
    assert ledger.head() is None


# ----------------------------------------------------------------- input


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"value": object()}, "not plain JSON"),
        ({"x": float("nan")}, "not plain JSON"),
        ({"x": 1, 2: "mixed keys"}, "not plain JSON"),
        (["rows", 1], "must be a dict"),
        ({"rows": "x" * (300 * 1024)}, "limit"),
    ],
)
def test_bad_payloads_are_refused(ledger, payload, message):
    with pytest.raises(ValueError, match=message):
        ledger.append("quality", agreement="mash", payload=payload)
    assert ledger.head() is None


def test_payload_is_stored_as_it_will_be_read(ledger):
    entry, _ = ledger.append("quality", agreement="mash", payload={"parts": (1, 2), "rows": 3})
    assert entry.payload == {"parts": [1, 2], "rows": 3} == ledger.head().payload
    assert ledger.verify().ok


def test_bad_kind_agreement_or_logical_date_is_refused(ledger):
    with pytest.raises(ValueError, match="logical_date must be a date, not a datetime"):
        ledger.append("quality", agreement="mash", logical_date=datetime(2024, 5, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="kind"):
        ledger.append("Disclosure; DROP", agreement="mash")
    with pytest.raises(ValueError, match="agreement"):
        ledger.append("disclosure", agreement="")
    assert ledger.head() is None


def test_bad_urls_are_named_without_their_password(tmp_path):
    with pytest.raises(ConfigError) as caught:
        Ledger("mysql://ig:hunter2@db.example/ledger")
    assert "hunter2" not in str(caught.value) and "ig:***@db.example" in str(caught.value)
    with pytest.raises(ConfigError, match="not a valid SQLAlchemy URL"):
        Ledger("not a url")
    with pytest.raises(ConfigError, match=f"folder {tmp_path / 'missing'} does not exist"):
        Ledger(f"sqlite:///{tmp_path / 'missing' / 'ledger.db'}")
    with pytest.raises(ConfigError, match="only for PostgreSQL"):
        Ledger(f"sqlite:///{tmp_path / 'l.db'}", schema="audit")
    with pytest.raises(ConfigError, match="plain lower-case SQL name"):
        Ledger(f"sqlite:///{tmp_path / 'l.db'}", table='x"; DROP TABLE y; --')


def test_locked_database_is_a_retriable_error(paths, monkeypatch):
    url, db, anchor = paths
    monkeypatch.setattr(ledger_store, "LOCK_TIMEOUT_SECONDS", 0.2)
    ledger = Ledger(url, anchor_path=anchor)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer that never finishes
    try:
        started = time.monotonic()
        with pytest.raises(LedgerUnavailable, match=f"cannot append to ledger {url}: database is locked") as caught:
            ledger.append("quality", agreement="mash")
        assert caught.value.retriable and time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert ledger.append("quality", agreement="mash")[0].seq == 1
    ledger.close()


# ----------------------------------------------------------------- several processes


def test_concurrent_appends_from_several_processes(paths, tmp_path):
    url, _db, anchor = paths
    run_concurrent_appends(url, anchor, tmp_path / "work", workers=6, each=25)
    with Ledger(url, anchor_path=anchor) as ledger:
        check_concurrent_result(ledger, anchor, workers=6, each=25)


def test_the_chain_is_checked_without_a_database():
    from transfers.ledger.chain import canonical_json, normalise_payload

    at = datetime(2024, 5, 1, tzinfo=UTC)
    first = Entry(1, at, "quality", "mash", None, None, None, None, {"rows": 1}, GENESIS_HASH, "")
    digest = first.expected_hash()
    assert digest == chain_hash(GENESIS_HASH, {"seq": 1, "at": "2024-05-01T00:00:00.000000+00:00", "kind": "quality",
                                               "agreement": "mash", "flow": None, "logical_date": None,
                                               "recipient": None, "dedupe_key": None, "payload": {"rows": 1}})
    assert canonical_json({"b": 1, "a": (1, 2)}) == '{"a":[1,2],"b":1}'
    assert normalise_payload("quality", {"a": (1, 2)}) == {"a": [1, 2]}
    with pytest.raises(ValueError, match="not plain JSON"):
        normalise_payload("quality", {"a": {1, 2}})
