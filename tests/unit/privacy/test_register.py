"""The register's tables: subjects stored once, disclosures point at prepared sets, old databases migrated."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, date, datetime

import sqlalchemy as sa

from transfers.privacy import register
from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of

DAY = date(2026, 11, 24)
KEY = lookup_key("a-long-enough-test-secret-0123456789", "mash-referrals")


def _old_digest(pseudonyms: list[str | None]) -> dict:
    digest = hashlib.sha256()
    for p in sorted(pseudonyms, key=lambda p: p or ""):
        digest.update(f"{p or ''}\n".encode())
    return {"subjects": len(pseudonyms), "subjects_sha256": digest.hexdigest()}


def _count(index: SubjectIndex, table: str) -> int:
    with index.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 - a constant


def _prepare(index: SubjectIndex, ref: str, numbers: list[str]) -> list[str]:
    pseudonyms = [hashlib.sha256(n.encode()).hexdigest() for n in numbers]
    index.record([{"event": "prepared", "agreement": "mash-referrals", "flow": "mash-referrals.A", "logical_date": DAY,
                   "recipient": None, "lookup": lookup_of(n, KEY), "pseudonym": p, "key_id": "k1", "detail": None,
                   "ref": ref} for n, p in zip(numbers, pseudonyms, strict=True)])
    return pseudonyms


def test_nights_of_one_cohort_store_each_subject_once_and_disclosures_copy_nothing(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    numbers = [f"9{i:09d}" for i in range(5000)]
    for night in range(3):
        pseudonyms = _prepare(index, f"prepared:{night}", numbers)
        for recipient in ("syp", "rnhs"):
            index.copy_prepared(f"prepared:{night}", disclosure_ref=f"d:{night}:{recipient}", recipient=recipient)
            assert index.digest("disclosed", f"d:{night}:{recipient}") == _old_digest(pseudonyms)
    assert _count(index, register.SUBJECTS) == 5000
    assert _count(index, register.MEMBERS) == 3 * 2  # 5000 consecutive ids: two blocks a night, for both recipients
    trail = index.events([lookup_of(numbers[17], KEY)])
    assert [(e.event, e.recipient, e.pseudonym) for e in trail] == [
        ("disclosed", r, pseudonyms[17]) for _night in range(3) for r in ("syp", "rnhs")]
    index.close()


def test_an_attempt_no_disclosure_points_at_is_forgotten_and_never_counts_as_sent(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    sent = _prepare(index, "prepared:mash-referrals.A:2026-11-24:a", ["9000000001", "9000000002"])
    _prepare(index, "prepared:mash-referrals.A:2026-11-24:b", ["9000000003"])
    index.copy_prepared("prepared:mash-referrals.A:2026-11-24:a", disclosure_ref="d", recipient="syp")
    assert index.unsent("mash-referrals.A") == 1
    assert index.forget_prepared("mash-referrals.A", DAY) == 1
    assert index.unsent("mash-referrals.A") == 0
    assert index.digest("disclosed", "d") == _old_digest(sent)
    assert index.events([lookup_of("9000000003", KEY)]) == []
    index.close()


def _legacy_database(path) -> None:
    """A ledger database as the one-row-per-subject register left it."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE subject_events (id INTEGER PRIMARY KEY AUTOINCREMENT, at DATETIME NOT NULL, "
               "event VARCHAR(32) NOT NULL, agreement VARCHAR(200) NOT NULL, flow VARCHAR(200), logical_date DATE, "
               "recipient VARCHAR(200), lookup VARCHAR(64) NOT NULL, pseudonym VARCHAR(64), key_id VARCHAR(100), "
               "detail VARCHAR(200), ref VARCHAR(500) NOT NULL, CONSTRAINT uq_subject_events UNIQUE (event, ref, lookup))")
    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).isoformat(sep=" ")
    rows = []
    for i in range(3):
        lookup = lookup_of(f"900000000{i}", KEY)
        pseudonym = hashlib.sha256(str(i).encode()).hexdigest()
        for recipient in ("syp", "rnhs"):
            rows.append((at, "disclosed", "mash-referrals", "mash-referrals.A", "2026-11-24", recipient, lookup,
                         pseudonym, "k1", None, f"d:{recipient}"))
    rows.append((at, "excluded", "mash-referrals", "mash-referrals.A", "2026-11-24", None,
                 lookup_of("9000000009", KEY), None, "k1", "consent withdrawn", "excluded:mash-referrals.A:2026-11-24"))
    db.executemany("INSERT INTO subject_events (at, event, agreement, flow, logical_date, recipient, lookup, pseudonym, "
                   "key_id, detail, ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.commit()
    db.close()


def test_an_old_register_is_moved_into_the_new_tables_once_on_open(tmp_path):
    path = tmp_path / "ledger.db"
    _legacy_database(path)
    expected = _old_digest([hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)])

    index = SubjectIndex(f"sqlite:///{path}")
    assert not sa.inspect(index.engine).has_table(register.LEGACY)
    assert index.digest("disclosed", "d:syp") == index.digest("disclosed", "d:rnhs") == expected
    trail = index.events([lookup_of("9000000001", KEY)])
    assert [(e.event, e.recipient, e.logical_date, e.key_id) for e in trail] == [
        ("disclosed", "rnhs", DAY, "k1"), ("disclosed", "syp", DAY, "k1")]
    assert trail[0].at == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    assert [(e.event, e.detail) for e in index.events([lookup_of("9000000009", KEY)])] == [
        ("excluded", "consent withdrawn")]
    index.close()

    again = SubjectIndex(f"sqlite:///{path}")  # opened again: nothing left to move, nothing doubled
    assert again.digest("disclosed", "d:syp") == expected
    again.close()


def test_a_disclosure_of_two_sets_that_share_a_block_counts_each_subject_once_and_no_other(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    numbers = [f"9{i:09d}" for i in range(6)]
    everyone = _prepare(index, "other", numbers)  # ids 1..6 exist
    row = {"event": "prepared", "agreement": "mash-referrals", "flow": "mash-referrals.A", "logical_date": DAY,
           "recipient": None, "key_id": "k1", "ref": "p"}
    # Two details in one prepare step: ids 1 and 3 under one, 3 again and 5 under the other (a range of 5 ids, 4 entries).
    index.record([{**row, "detail": "a", "lookup": lookup_of(numbers[0], KEY), "pseudonym": everyone[0]},
                  {**row, "detail": "a", "lookup": lookup_of(numbers[2], KEY), "pseudonym": everyone[2]},
                  {**row, "detail": "b", "lookup": lookup_of(numbers[2], KEY), "pseudonym": everyone[2]},
                  {**row, "detail": "b", "lookup": lookup_of(numbers[4], KEY), "pseudonym": everyone[4]}])
    index.copy_prepared("p", disclosure_ref="d", recipient="syp")
    assert sorted(index.pseudonyms("disclosed", "d")) == sorted([everyone[0], everyone[2], everyone[4]])
    assert index.digest("disclosed", "d") == _old_digest([everyone[0], everyone[2], everyone[4]])
    index.close()


def test_each_distinct_pair_gets_one_id_whatever_its_widths_order_or_repeats(tmp_path):
    index = SubjectIndex(f"sqlite:///{tmp_path / 'ledger.db'}")
    token = [hashlib.sha256(bytes([i])).digest()[:16] for i in range(4)]
    digest = [hashlib.sha256(bytes([i, i])).digest() for i in range(4)]
    batches = [
        ([token[3], token[1], token[3], token[0]], [digest[3], digest[1], digest[3], digest[0]]),  # one width
        ([token[2], token[1]], [b"", b""]),  # no pseudonym: the empty blob, never NULL
        ([token[1], token[2], token[0], token[1]], [digest[1], b"\x00text", digest[0], b""]),  # mixed widths
        ([b"short", token[0]], [digest[2], digest[0]]),  # a token of another width
    ]
    with index.engine.begin() as conn:
        found = [register.subject_ids(conn, tokens, pseudonyms) for tokens, pseudonyms in batches]
        stored = {row.id: (row.lookup, row.pseudonym) for row in conn.execute(sa.select(index.subjects))}
    index.close()

    for (tokens, pseudonyms), ids in zip(batches, found, strict=True):
        assert sorted(stored[i] for i in ids.tolist()) == sorted(set(zip(tokens, pseudonyms, strict=True)))
    assert len(stored) == len({pair for tokens, pseudonyms in batches for pair in zip(tokens, pseudonyms, strict=True)})
    assert found[0].tolist() == sorted(found[0].tolist())  # a new cohort's ids follow token order
