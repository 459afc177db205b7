"""A notice acted on in the store (SQLite): a withdrawn subject's rows deleted in every table given, a
corrected subject's rows marked, each notice once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from transfers.receive.store import ReceivedStore
from transfers.receive.subject_rows import (
    CORRECTIONS_TABLE,
    SubjectTable,
    applied,
    apply_subject_notice,
)

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
FIELDS = ["nhs number", "postcode"]  # a space: names are quoted, not pasted


def load(store: ReceivedStore, flow: str, subjects: list[str], day: int = 25) -> str:
    delivery = f"dsa-1:{flow}:2026-11-{day}:leeds"
    store.load(delivery_id=delivery, manifest_sha256="a" * 64, agreement="dsa-1", agreement_version="1", flow=flow,
               logical_date=date(2026, 11, day), sender="bradford", received_at=AT, destroy_by=date(2030, 1, 1),
               fields=FIELDS, parts=[[{"nhs number": s, "postcode": "LS1"} for s in subjects]])
    return delivery


@pytest.fixture
def store(tmp_path) -> Iterator[ReceivedStore]:
    with ReceivedStore(f"sqlite:///{tmp_path / 'received.db'}") as opened:
        yield opened


def subjects(store: ReceivedStore, table: str) -> list[str]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(sa.text(f'SELECT "nhs number" FROM "{table}" ORDER BY 1'))]


TABLES = [SubjectTable("received_dsa_1_a", "nhs number"), SubjectTable("received_dsa_1_b", "nhs number")]


def test_a_withdrawal_deletes_the_subjects_rows_in_every_table_and_only_theirs(store):
    first = load(store, "a", ["p1", "p2", "p1"])
    load(store, "a", ["p1", "p3"], day=26)
    load(store, "b", ["p1", "p4"])

    done = apply_subject_notice(store, reference="abc123abc123", notice="withdrawal", tables=TABLES,
                                pseudonyms=["p1"], at=AT)

    assert (done.rows, done.tables, done.already) == (4, ("received_dsa_1_a", "received_dsa_1_b"), False)
    assert subjects(store, "received_dsa_1_a") == ["p2", "p3"]
    assert subjects(store, "received_dsa_1_b") == ["p4"]
    # The register still says how many of each delivery's rows are gone.
    assert store.delivered(first).rows_destroyed == 2
    assert store.delivered(first).destroyed_at is None


def test_the_same_notice_applied_again_does_nothing_and_returns_the_first_outcome(store):
    load(store, "a", ["p1", "p2"])
    apply_subject_notice(store, reference="abc123abc123", notice="withdrawal", tables=TABLES[:1],
                         pseudonyms=["p1"], at=AT)
    load(store, "a", ["p1"], day=26)  # arrived after the notice: not this notice's to delete

    again = apply_subject_notice(store, reference="abc123abc123", notice="withdrawal", tables=TABLES[:1],
                                 pseudonyms=["p1"], at=AT)

    assert (again.rows, again.already) == (1, True)
    assert subjects(store, "received_dsa_1_a") == ["p1", "p2"]
    assert applied(store, "abc123abc123") == again
    assert applied(store, "000000000000") is None


def test_a_table_that_is_missing_or_lacks_the_column_is_skipped(store):
    load(store, "a", ["p1"])
    tables = [SubjectTable("received_dsa_1_a", "no such column"), SubjectTable("received_dsa_1_z", "nhs number")]

    done = apply_subject_notice(store, reference="abc123abc123", notice="withdrawal", tables=tables,
                                pseudonyms=["p1"], at=AT)

    assert done.rows == 0
    assert subjects(store, "received_dsa_1_a") == ["p1"]


def test_a_correction_marks_the_subjects_rows_and_deletes_nothing(store):
    load(store, "a", ["p1", "p1", "p2"])
    load(store, "b", ["p2"])

    done = apply_subject_notice(store, reference="def456def456", notice="correction", tables=TABLES,
                                pseudonyms=["p1", "p9"], fields=["postcode"], at=AT)

    assert done.rows == 2
    assert subjects(store, "received_dsa_1_a") == ["p1", "p1", "p2"]
    with store.engine.connect() as conn:
        marks = [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {CORRECTIONS_TABLE}"))]
    assert [(m["table_name"], m["subject"], m["reference"], m["fields"]) for m in marks] == [
        ("received_dsa_1_a", "p1", "def456def456", '["postcode"]')]


def test_an_unknown_kind_or_a_naive_time_is_refused(store):
    with pytest.raises(ValueError, match="neither"):
        apply_subject_notice(store, reference="r", notice="erasure", tables=TABLES, pseudonyms=["p1"], at=AT)
    with pytest.raises(ValueError, match="timezone"):
        apply_subject_notice(store, reference="r", notice="withdrawal", tables=TABLES, pseudonyms=["p1"],
                             at=AT.replace(tzinfo=None))
