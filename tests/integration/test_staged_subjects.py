"""A prepare step's subjects: known ones recorded at once, new ones added at the end in one sorted insert,
on SQLite and on PostgreSQL, with the same sets as recording them one batch at a time."""

from __future__ import annotations

import hashlib
import uuid

import pytest
import sqlalchemy as sa

from transfers.privacy import members
from transfers.privacy.staged import StagedSubjects
from transfers.privacy.subjects import SubjectIndex

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_source")[0]  # its own throwaway database


def _token(n: int) -> bytes:
    return members.token(hashlib.sha256(f"subject {n}".encode()).hexdigest())


def _pseudonym(n: int) -> bytes:
    return hashlib.sha256(f"pseudonym {n}".encode()).digest()


def _fields(ref: str, detail: str | None = None, event: str = "prepared") -> dict:
    return {"event": event, "agreement": "mash-referrals", "flow": "mash-referrals.A", "logical_date": None,
            "recipient": None, "key_id": "k1", "detail": detail, "ref": ref}


def _pairs(numbers: list[int]) -> tuple[list[bytes], list[bytes]]:
    return [_token(n) for n in numbers], [_pseudonym(n) for n in numbers]


def _stored(index: SubjectIndex) -> list[tuple[bytes, bytes]]:
    with index.engine.connect() as conn:
        rows = conn.execute(sa.select(index.subjects).order_by(index.subjects.c.id))
        return [(bytes(r.lookup), bytes(r.pseudonym)) for r in rows]


def test_new_subjects_reach_the_register_at_the_end_once_each_and_the_sets_match_batch_by_batch(url):
    index = SubjectIndex(url)
    known, ref, direct = list(range(0, 300)), f"prepared:{uuid.uuid4().hex}", f"prepared:{uuid.uuid4().hex}"
    index.record([{**_fields(f"night-before:{ref}"), "lookup": hashlib.sha256(f"subject {n}".encode()).hexdigest(),
                   "pseudonym": _pseudonym(n).hex()} for n in known])
    before = len(_stored(index))
    batches = [list(range(200, 700)), list(range(600, 900)) + [5, 5, 650], list(range(850, 1000))]
    staged = StagedSubjects(index)
    for numbers in batches:
        staged.add(_fields(ref), *_pairs(numbers))
    # Known subjects are in the set already; none of the 700 new ones is in the register yet.
    assert len(_stored(index)) == before
    assert index.digest("prepared", ref)["subjects"] == 101  # 200..299 and 5 were known (5 came twice)
    assert staged.flush() == 700
    staged.close()

    stored = _stored(index)
    assert len(stored) == before + 700 == len(set(stored))  # each subject once, however often it came
    new = [pair for pair in stored[before:] if pair[0] in {_token(n) for n in range(300, 1000)}]
    assert [pair[0] for pair in new] == sorted(pair[0] for pair in new)  # ids follow token order
    everyone = sorted({n for numbers in batches for n in numbers})
    for numbers in batches:  # the same subjects recorded batch by batch, the old way
        index.record([{**_fields(direct), "lookup": hashlib.sha256(f"subject {n}".encode()).hexdigest(),
                       "pseudonym": _pseudonym(n).hex()} for n in numbers])
    assert index.digest("prepared", ref) == index.digest("prepared", direct)
    assert index.digest("prepared", ref)["subjects"] == len(everyone)
    assert len(_stored(index)) == before + 700  # the old way found every one of them
    index.close()


def test_each_event_of_a_step_keeps_its_own_subjects(url):
    index = SubjectIndex(url)
    ref = f"prepared:{uuid.uuid4().hex}"
    before = len(_stored(index))  # PostgreSQL: the database may hold another test's subjects
    staged = StagedSubjects(index)
    staged.add(_fields(ref, "without consent: s.115"), *_pairs([9001, 9002, 9003]))
    staged.add(_fields(ref, "without consent: s.115; opted out overridden"), *_pairs([9003, 9004]))
    tokens, _ = _pairs([9007, 9008])
    staged.add(_fields(f"excluded:{ref}", "opted out", event="excluded"), tokens, [b""] * 2)
    staged.flush()
    staged.close()
    # an event's subjects count once, whichever of its details named them
    assert sorted(index.pseudonyms("prepared", ref)) == sorted(_pseudonym(n).hex() for n in [9001, 9002, 9003, 9004])
    with index.engine.connect() as conn:
        details = dict(conn.execute(sa.select(index.headers.c.detail, index.headers.c.id).where(
            index.headers.c.ref == ref)).all())
        held = {detail: members.count(conn.execute(sa.select(index.members.c.block, index.members.c.data).where(
            index.members.c.header_id == header_id))) for detail, header_id in details.items()}
    assert held == {"without consent: s.115": 3, "without consent: s.115; opted out overridden": 2}
    assert index.pseudonyms("excluded", f"excluded:{ref}") == [None, None]
    assert len(_stored(index)) == before + 6  # subject 3 once; the excluded pair has no pseudonym
    index.close()


def test_a_step_that_ends_without_flushing_records_no_new_subject_and_leaves_nothing_staged(url):
    index = SubjectIndex(url)
    ref = f"prepared:{uuid.uuid4().hex}"
    before = _stored(index)
    failed = StagedSubjects(index)
    failed.add(_fields(ref), *_pairs(list(range(5000, 5050))))
    failed.close()  # the step failed: the attempt is dropped
    assert _stored(index) == before
    retry = StagedSubjects(index)  # likely the same pooled connection: nothing of the failed attempt is in it
    retry.add(_fields(ref), *_pairs([5001, 5002]))
    assert retry.flush() == 2
    retry.close()
    assert len(_stored(index)) == len(before) + 2
    assert sorted(index.pseudonyms("prepared", ref)) == sorted(_pseudonym(n).hex() for n in [5001, 5002])
    index.close()


def test_a_long_step_adds_its_new_subjects_part_way_and_records_the_same_set(url):
    index = SubjectIndex(url)
    ref, direct = f"prepared:{uuid.uuid4().hex}", f"prepared:{uuid.uuid4().hex}"
    before = len(_stored(index))
    batches = [list(range(20_000, 20_500)), list(range(20_400, 20_600)), list(range(20_550, 20_700))]
    staged = StagedSubjects(index, flush_every=450)  # past 450 waiting, they go in at once
    staged.add(_fields(ref), *_pairs(batches[0]))
    assert len(_stored(index)) == before + 500
    staged.add(_fields(ref), *_pairs(batches[1]))
    assert len(_stored(index)) == before + 500  # 100 new ones wait
    staged.add(_fields(ref), *_pairs(batches[2]))
    assert staged.flush() == 100 + 100
    staged.close()
    for numbers in batches:
        index.record([{**_fields(direct), "lookup": hashlib.sha256(f"subject {n}".encode()).hexdigest(),
                       "pseudonym": _pseudonym(n).hex()} for n in numbers])
    assert len(_stored(index)) == before + 700
    assert index.digest("prepared", ref) == index.digest("prepared", direct)
    assert index.digest("prepared", ref)["subjects"] == 700
    index.close()
