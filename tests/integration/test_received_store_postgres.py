"""The recipient's store on a real PostgreSQL: loads, idempotence, replays, rollback, columns, concurrency, streaming."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from tests.integration.conftest import throwaway_pg_database
from transfers.errors import ConfigError, DeliveryRejected
from transfers.receive import store as store_module
from transfers.receive.store import BATCH_ROWS, ReceivedStore

pytestmark = pytest.mark.integration

FIELDS = ["case_id", "Postcode District", "age-band"]  # mixed case, a space, a hyphen: quoted identifiers
TABLE = "received_dsa_1_referrals"
DAY = date(2026, 11, 25)
DELIVERY = "dsa-1:referrals:2026-11-25:leeds"
SHA, OTHER_SHA = "a" * 64, "b" * 64


def rows(start: int, count: int) -> list[dict[str, str | None]]:
    return [{"case_id": f"C{n}", "Postcode District": None if n % 5 == 0 else f"LS{n % 30}", "age-band": "40-49"}
            for n in range(start, start + count)]


def load(store: ReceivedStore, parts, *, delivery_id: str = DELIVERY, sha: str = SHA, fields=None):
    return store.load(delivery_id=delivery_id, manifest_sha256=sha, agreement="dsa-1", agreement_version="1.2",
                      flow="referrals", logical_date=DAY, sender="bradford",
                      received_at=datetime(2026, 11, 26, 2, 5, tzinfo=UTC), destroy_by=date(2027, 11, 25),
                      fields=FIELDS if fields is None else fields, parts=parts)


def untouchable():
    raise AssertionError("parts were read")
    yield  # pragma: no cover


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_pg_database("isp_received") as (url, _name):
        yield url


@pytest.fixture
def url(database) -> Iterator[str]:
    """The module's database, emptied of store tables after each test."""
    yield database
    engine = sa.create_engine(database)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith("received_"):
                conn.execute(sa.text(f'DROP TABLE "{name}"'))
    engine.dispose()


@pytest.fixture
def store(url) -> Iterator[ReceivedStore]:
    with ReceivedStore(url) as opened:
        yield opened


def table_rows(store: ReceivedStore) -> list[dict]:
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(TABLE):
            return []
        return [dict(r._mapping) for r in conn.execute(sa.text(f'SELECT * FROM "{TABLE}" ORDER BY case_id'))]


def test_load_creates_typed_columns_and_registers_the_delivery(store):
    result = load(store, [rows(0, 3), rows(3, 3)])

    assert (result.rows, result.table, result.already_loaded) == (6, TABLE, False)
    loaded = table_rows(store)
    assert sorted(r["case_id"] for r in loaded) == [f"C{n}" for n in range(6)]
    assert loaded[0]["Postcode District"] is None and loaded[1]["age-band"] == "40-49"
    assert loaded[0]["logical_date"] == DAY and loaded[0]["destroy_by"] == date(2027, 11, 25)
    assert loaded[0]["received_at"] == datetime(2026, 11, 26, 2, 5, tzinfo=UTC)
    with store.engine.connect() as conn:
        types = dict(conn.execute(sa.text(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = :t"), {"t": TABLE}).all())
        indexes = [i["column_names"] for i in sa.inspect(conn).get_indexes(TABLE)]
    assert types == {"case_id": "text", "Postcode District": "text", "age-band": "text", "delivery_id": "text",
                     "logical_date": "date", "received_at": "timestamp with time zone", "destroy_by": "date"}
    assert indexes == [["delivery_id"]]
    registered = store.delivered(DELIVERY)
    assert (registered.rows, registered.manifest_sha256, registered.table_name) == (6, SHA, TABLE)
    assert registered.received_at == datetime(2026, 11, 26, 2, 5, tzinfo=UTC)
    assert [d.delivery_id for d in store.deliveries(agreement="dsa-1", flow="referrals")] == [DELIVERY]


def test_the_same_delivery_received_twice_loads_once(store):
    load(store, [rows(0, 4)])
    again = load(store, untouchable())
    assert again.already_loaded and again.rows == 4
    assert len(table_rows(store)) == 4


def test_a_replay_from_another_manifest_is_rejected(store):
    load(store, [rows(0, 4)])
    with pytest.raises(DeliveryRejected, match="already loaded from another manifest"):
        load(store, untouchable(), sha=OTHER_SHA)
    assert len(table_rows(store)) == 4 and store.delivered(DELIVERY).manifest_sha256 == SHA


def test_a_part_failing_midway_leaves_nothing_of_the_delivery(store):
    def parts():
        yield rows(0, BATCH_ROWS * 2 + 1)  # two batches sent to the server before the failure
        raise DeliveryRejected("part 2: signature is not the sender's pinned key")

    with pytest.raises(DeliveryRejected, match="part 2"):
        load(store, parts())
    assert table_rows(store) == []
    assert store.delivered(DELIVERY) is None and store.deliveries() == []


def test_a_flow_table_with_other_columns_is_a_config_error(store):
    load(store, [rows(0, 1)])
    with pytest.raises(ConfigError) as caught:
        load(store, untouchable(), delivery_id="next", fields=["case_id", "age-band", "sex"])
    assert f"store table {TABLE}" in str(caught.value)
    assert "missing sex;" in str(caught.value) and "extra Postcode District." in str(caught.value)
    assert store.delivered("next") is None


def test_a_large_delivery_is_streamed(store):
    inserted, produced, part_rows = 0, 0, 300

    @sa.event.listens_for(store.engine, "after_execute")
    def count(conn, clause, multiparams, params, execution_options, result):
        nonlocal inserted
        if isinstance(clause, sa.Insert) and clause.table.name == TABLE:
            inserted += len(multiparams) if isinstance(multiparams, list) else 1

    def parts():
        nonlocal produced
        for n in range(100):  # 30,000 rows
            assert produced - inserted < BATCH_ROWS  # what came before is at the server, bar one batch
            yield rows(n * part_rows, part_rows)
            produced += part_rows

    assert load(store, parts()).rows == produced == inserted == 30_000
    assert len(table_rows(store)) == 30_000


def _race(url: str, parts_for) -> tuple[list, list]:
    results, errors = [], []
    start = threading.Barrier(2)

    def worker(n: int) -> None:
        try:
            with ReceivedStore(url) as own:
                start.wait()
                results.append(load(own, parts_for(n)))
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results, errors


def test_two_loads_of_one_delivery_at_once_load_it_once(url):
    reads = []

    def parts(worker: int):
        reads.append(worker)
        for n in range(4):
            yield rows(n * 700, 700)
            time.sleep(0.1)  # a slow load: without the lock the second would start reading meanwhile

    results, errors = _race(url, parts)
    assert errors == []
    assert sorted(r.already_loaded for r in results) == [False, True]
    assert len(reads) == 1  # the second waited for the first's lock, then found it loaded
    with ReceivedStore(url) as check:
        assert len(table_rows(check)) == 2800 and [d.rows for d in check.deliveries()] == [2800]


def test_without_the_lock_the_primary_key_still_loads_once(url, monkeypatch):
    with ReceivedStore(url) as first:  # the tables exist: only the delivery row can collide
        load(first, [rows(0, 1)], delivery_id="earlier")
    # Each transaction locks a key of its own: as if something bypassed our lock.
    monkeypatch.setattr(store_module, "_lock_key", lambda name: uuid.uuid4().int % (1 << 62))
    both_reading = threading.Barrier(2)

    def parts(worker: int):
        both_reading.wait(timeout=60)  # both passed the "already loaded?" check
        yield rows(0, 500)

    results, errors = _race(url, parts)
    assert errors == []
    assert sorted(r.already_loaded for r in results) == [False, True]
    with ReceivedStore(url) as check:
        assert len([r for r in table_rows(check) if r["delivery_id"] == DELIVERY]) == 500


def test_destruction_on_postgresql_keeps_held_subjects_and_upgrades_an_older_register(url):
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the register as the first stores made it, one delivery in it
        conn.execute(sa.text(
            "CREATE TABLE received_deliveries (delivery_id TEXT PRIMARY KEY, agreement TEXT NOT NULL, "
            "agreement_version TEXT NOT NULL, flow TEXT NOT NULL, logical_date DATE NOT NULL, sender TEXT NOT NULL, "
            "manifest_sha256 TEXT NOT NULL, rows BIGINT NOT NULL, received_at TIMESTAMP WITH TIME ZONE NOT NULL, "
            "destroy_by DATE NOT NULL, table_name TEXT NOT NULL)"))
    engine.dispose()
    with ReceivedStore(url) as store:
        load(store, [rows(0, 6)])  # C0..C5; every fifth has no postcode
        assert store.due(datetime(2027, 11, 24, 23, tzinfo=UTC)) == []
        assert [d.delivery_id for d in store.due(datetime(2027, 11, 25, tzinfo=UTC))] == [DELIVERY]

        assert store.destroy(DELIVERY, subject_column="Postcode District", keep=("LS1", "LS3")) == 4
        assert sorted(r["case_id"] for r in table_rows(store)) == ["C1", "C3"]
        assert store.delivered(DELIVERY).destroyed_at is None and store.delivered(DELIVERY).rows_destroyed == 4

        at = datetime(2027, 11, 25, 4, tzinfo=UTC)
        assert store.destroy(DELIVERY, at=at) == 2
        assert table_rows(store) == [] and store.remaining(DELIVERY) == 0
        assert (store.delivered(DELIVERY).destroyed_at, store.delivered(DELIVERY).rows_destroyed) == (at, 6)
