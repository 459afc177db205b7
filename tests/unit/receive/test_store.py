"""The recipient's store on SQLite: per-flow tables, one-transaction idempotent loads, replays refused."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from transfers.errors import ConfigError, DeliveryRejected
from transfers.receive.store import BATCH_ROWS, DELIVERIES_TABLE, ReceivedStore, table_name

FIELDS = ["case_id", "postcode district", "Age-Band"]  # a space and a hyphen: names are quoted, not pasted
DAY = date(2026, 11, 25)
SHA = "a" * 64
OTHER_SHA = "b" * 64


def rows(start: int, count: int) -> list[dict[str, str | None]]:
    return [{"case_id": f"C{n}", "postcode district": None if n % 7 == 0 else f"LS{n % 30}",
             "Age-Band": "30-39"} for n in range(start, start + count)]


def load(store: ReceivedStore, parts, *, delivery_id: str = "dsa-1:referrals:2026-11-25:leeds",
         sha: str = SHA, fields: list[str] | None = None, flow: str = "referrals"):
    return store.load(delivery_id=delivery_id, manifest_sha256=sha, agreement="dsa-1", agreement_version="1.2",
                      flow=flow, logical_date=DAY, sender="bradford", received_at=datetime(2026, 11, 26, 2, 5, tzinfo=UTC),
                      destroy_by=date(2027, 11, 25), fields=FIELDS if fields is None else fields, parts=parts)


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'received.db'}"


@pytest.fixture
def store(url) -> Iterator[ReceivedStore]:
    with ReceivedStore(url) as opened:
        yield opened


def table_rows(store: ReceivedStore, table: str) -> list[dict]:
    with store.engine.connect() as conn:
        if not sa.inspect(conn).has_table(table):
            return []
        return [dict(r._mapping) for r in conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY rowid'))]


def untouchable():
    """Parts that fail the test if anything reads them."""
    raise AssertionError("parts were read")
    yield  # pragma: no cover


# ---------------------------------------------------------------- table names

def test_table_name_is_lower_case_and_plain():
    assert table_name("DSA-1", "Referrals.Weekly") == "received_dsa_1_referrals_weekly"


def test_a_long_table_name_is_cut_to_63_with_a_hash_that_keeps_names_apart():
    first, second = table_name("a" * 40, "flow_one_" + "x" * 30), table_name("a" * 40, "flow_one_" + "x" * 31)
    assert len(first) == len(second) == 63
    assert first != second
    assert first.startswith("received_aaaa")
    assert table_name("a" * 40, "b" * 12) == "received_" + "a" * 40 + "_" + "b" * 12  # 62: not cut


# ---------------------------------------------------------------- loading

def test_load_creates_the_flow_table_and_registers_the_delivery(store):
    result = load(store, [rows(0, 3), rows(3, 2)])

    assert (result.rows, result.table, result.already_loaded) == (5, "received_dsa_1_referrals", False)
    loaded = table_rows(store, result.table)
    assert [r["case_id"] for r in loaded] == ["C0", "C1", "C2", "C3", "C4"]
    assert loaded[0]["postcode district"] is None and loaded[1]["Age-Band"] == "30-39"
    assert {r["delivery_id"] for r in loaded} == {"dsa-1:referrals:2026-11-25:leeds"}
    with store.engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert [c["name"] for c in inspector.get_columns(result.table)] == [
            *FIELDS, "delivery_id", "logical_date", "received_at", "destroy_by"]
        assert [i["column_names"] for i in inspector.get_indexes(result.table)] == [["delivery_id"]]
    registered = store.delivered("dsa-1:referrals:2026-11-25:leeds")
    assert registered is not None
    assert (registered.rows, registered.manifest_sha256, registered.table_name) == (5, SHA, result.table)
    assert (registered.logical_date, registered.destroy_by) == (DAY, date(2027, 11, 25))
    assert registered.received_at == datetime(2026, 11, 26, 2, 5, tzinfo=UTC)
    assert registered.received_at.tzinfo is not None


def test_received_at_is_stored_in_utc(store):
    store.load(delivery_id="d1", manifest_sha256=SHA, agreement="dsa-1", agreement_version="1", flow="f",
               logical_date=DAY, sender="s", received_at=datetime(2026, 11, 26, 3, 5, tzinfo=timezone(timedelta(hours=1))),
               destroy_by=DAY, fields=FIELDS, parts=[rows(0, 1)])
    assert store.delivered("d1").received_at == datetime(2026, 11, 26, 2, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="timezone"):
        store.load(delivery_id="d2", manifest_sha256=SHA, agreement="dsa-1", agreement_version="1", flow="f",
                   logical_date=DAY, sender="s", received_at=datetime(2026, 11, 26), destroy_by=DAY,
                   fields=FIELDS, parts=[])


def test_the_same_delivery_loads_once_and_the_second_load_reads_no_parts(store):
    first = load(store, [rows(0, 4)])
    again = load(store, untouchable())

    assert again.already_loaded and (again.rows, again.table) == (4, first.table)
    assert len(table_rows(store, first.table)) == 4


def test_a_replay_from_another_manifest_is_rejected_and_loads_nothing(store):
    load(store, [rows(0, 4)])
    with pytest.raises(DeliveryRejected, match=r"dsa-1:referrals:2026-11-25:leeds was already loaded from another "
                                               r"manifest \(sha256 a{16}…\): a resend or replay is not loaded twice"):
        load(store, untouchable(), sha=OTHER_SHA)
    assert len(table_rows(store, "received_dsa_1_referrals")) == 4
    assert store.delivered("dsa-1:referrals:2026-11-25:leeds").manifest_sha256 == SHA


def test_a_part_failing_midway_rolls_the_whole_delivery_back(store):
    def parts():
        yield rows(0, BATCH_ROWS + 5)  # a full batch already went to the database
        yield rows(BATCH_ROWS + 5, 3)
        raise DeliveryRejected("part 3: signature is not the sender's pinned key")

    with pytest.raises(DeliveryRejected, match="part 3"):
        load(store, parts())

    assert table_rows(store, "received_dsa_1_referrals") == []
    assert store.delivered("dsa-1:referrals:2026-11-25:leeds") is None
    assert store.deliveries() == []
    # ... and a good copy of the same delivery loads afterwards.
    assert load(store, [rows(0, 2)]).rows == 2


def test_a_row_whose_keys_are_not_the_fields_rejects_the_delivery(store):
    bad = rows(0, 2)
    bad[1]["extra"] = "x"
    with pytest.raises(DeliveryRejected, match=r"columns are not the flow's fields \(missing \[\], extra \['extra'\]\)"):
        load(store, [bad])
    assert store.delivered("dsa-1:referrals:2026-11-25:leeds") is None


def test_a_flow_table_with_other_columns_is_a_config_error_naming_them(store):
    load(store, [rows(0, 1)])
    with pytest.raises(ConfigError) as caught:
        load(store, untouchable(), delivery_id="next", fields=["case_id", "Age-Band", "sex"])
    message = str(caught.value)
    assert "received_dsa_1_referrals" in message
    assert "missing sex;" in message and "extra postcode district." in message
    assert store.delivered("next") is None


@pytest.mark.parametrize("fields, problem", [
    ([], "shares no fields"),
    (["case_id", "CASE_ID"], "repeats a column name"),
    (["delivery_id"], "repeats a column name"),
    (["x" * 64], "is not a column name"),
])
def test_fields_that_cannot_be_columns_are_refused(store, fields, problem):
    with pytest.raises(ConfigError, match=problem):
        load(store, untouchable(), fields=fields)


def test_flows_get_their_own_tables_and_deliveries_lists_them(store):
    load(store, [rows(0, 1)], delivery_id="dsa-1:referrals:2026-11-25:leeds")
    load(store, [rows(0, 2)], delivery_id="dsa-1:outcomes:2026-11-25:leeds", flow="outcomes")

    assert [d.delivery_id for d in store.deliveries()] == ["dsa-1:outcomes:2026-11-25:leeds",
                                                           "dsa-1:referrals:2026-11-25:leeds"]
    assert [d.table_name for d in store.deliveries(flow="outcomes")] == ["received_dsa_1_outcomes"]
    assert store.deliveries(agreement="other") == []
    assert len(table_rows(store, "received_dsa_1_outcomes")) == 2


def test_reading_an_empty_store_creates_nothing(store):
    assert store.delivered("nothing") is None and store.deliveries() == []
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table(DELIVERIES_TABLE)


def test_a_large_delivery_is_streamed_part_by_part(store):
    inserted = 0

    @sa.event.listens_for(store.engine, "after_execute")
    def count(conn, clause, multiparams, params, execution_options, result):
        nonlocal inserted
        if isinstance(clause, sa.Insert) and clause.table.name == "received_dsa_1_referrals":
            inserted += len(multiparams) if isinstance(multiparams, list) else 1

    part_rows, produced = 250, 0

    def parts():
        nonlocal produced
        for n in range(200):  # 50,000 rows
            # Lazy: what was produced before this part is in the database, bar one unfilled batch.
            assert produced - inserted < BATCH_ROWS
            yield rows(n * part_rows, part_rows)
            produced += part_rows

    result = load(store, parts())
    assert result.rows == produced == inserted == 50_000
    assert len(table_rows(store, result.table)) == 50_000


def test_two_loads_of_one_delivery_at_once_load_it_once(url):
    results, errors, reads = [], [], []
    start = threading.Barrier(2)

    def parts(worker: int):
        reads.append(worker)
        for n in range(5):
            yield rows(n * 500, 500)
            time.sleep(0.1)  # a slow load: without the lock the second would start reading meanwhile

    def worker(n: int) -> None:
        try:
            with ReceivedStore(url) as own:
                start.wait()
                results.append(load(own, parts(n)))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert sorted(r.already_loaded for r in results) == [False, True]
    assert len(reads) == 1  # the loser never read the parts
    with ReceivedStore(url) as check:
        assert len(table_rows(check, "received_dsa_1_referrals")) == 2500
        assert [d.rows for d in check.deliveries()] == [2500]


def test_urls_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        ReceivedStore(f"sqlite:///{tmp_path / 'missing' / 'received.db'}")
    with pytest.raises(ConfigError, match="not supported"):
        ReceivedStore("mysql://u:secret@host/db")
    with pytest.raises(ConfigError) as caught:
        ReceivedStore("postgresql://u:secret@host:notaport/db")
    assert "secret" not in str(caught.value)


def test_a_store_that_cannot_be_reached_is_a_retriable_error_and_loads_nothing(tmp_path):
    from datetime import UTC, date, datetime

    from transfers.errors import StoreUnavailable
    from transfers.receive.store import ReceivedStore

    # Nothing listens on port 1: the connection is refused at once.
    with ReceivedStore("postgresql+psycopg2://postgres@127.0.0.1:1/none") as store, \
            pytest.raises(StoreUnavailable, match="127.0.0.1:1") as caught:
        store.load(delivery_id="d", manifest_sha256="a" * 64, agreement="mash-referrals", agreement_version="1.1",
                   flow="A", logical_date=date(2026, 11, 25), sender="cs", received_at=datetime.now(UTC),
                   destroy_by=date(2032, 11, 25), fields=["referral_id"], parts=iter([]))
    assert caught.value.retriable


# ---------------------------------------------------------------- destruction

DESTROY_BY = date(2027, 11, 25)
ID = "dsa-1:referrals:2026-11-25:leeds"


def test_a_delivery_is_due_from_its_destroy_by_date_and_not_before(store):
    load(store, [rows(0, 3)])
    assert store.due(datetime(2027, 11, 24, 23, 59, tzinfo=UTC)) == []
    assert [d.delivery_id for d in store.due(datetime(2027, 11, 25, 0, 0, tzinfo=UTC))] == [ID]
    # Judged on the UTC date: 00:30 on the 25th in UTC+1 is still the 24th in UTC.
    assert store.due(datetime(2027, 11, 25, 0, 30, tzinfo=timezone(timedelta(hours=1)))) == []
    with pytest.raises(ValueError, match="timezone"):
        store.due(datetime(2027, 11, 26))


def test_destroy_deletes_only_that_deliverys_rows_and_marks_the_register(store):
    load(store, [rows(0, 3)])
    load(store, [rows(10, 2)], delivery_id="other")
    at = datetime(2027, 11, 25, 4, 0, tzinfo=UTC)

    assert store.destroy(ID, at=at) == 3

    left = table_rows(store, "received_dsa_1_referrals")
    assert {r["delivery_id"] for r in left} == {"other"} and len(left) == 2
    done = store.delivered(ID)
    assert (done.destroyed_at, done.rows_destroyed, done.rows) == (at, 3, 3)
    assert store.remaining(ID) == 0
    assert store.due(datetime(2030, 1, 1, tzinfo=UTC))[0].delivery_id == "other"  # the destroyed one is done
    assert store.destroy(ID) == 0  # again: nothing more, the mark stays
    assert store.delivered(ID).destroyed_at == at
    # A replay of the destroyed delivery is not loaded again.
    assert load(store, untouchable()).already_loaded


def test_destroy_keeps_the_rows_of_held_subjects_and_the_rest_go(store):
    load(store, [rows(0, 6)])  # C0..C5; C0 has no postcode, every row a case_id
    keep = ("C2", "C4")

    assert store.subject_rows(ID, "case_id", keep) == 2
    assert store.destroy(ID, subject_column="case_id", keep=keep) == 4
    assert sorted(r["case_id"] for r in table_rows(store, "received_dsa_1_referrals")) == ["C2", "C4"]
    partly = store.delivered(ID)
    assert (partly.destroyed_at, partly.rows_destroyed) == (None, 4)  # not wholly destroyed: still due
    assert store.remaining(ID, subject_column="case_id", keep=keep) == 0 and store.remaining(ID) == 2
    assert [d.delivery_id for d in store.due(datetime(2028, 1, 1, tzinfo=UTC))] == [ID]

    assert store.destroy(ID, subject_column="case_id", keep=keep) == 0  # the hold still in force
    assert store.destroy(ID) == 2  # lifted
    whole = store.delivered(ID)
    assert whole.destroyed_at is not None and whole.rows_destroyed == 6
    assert table_rows(store, "received_dsa_1_referrals") == []


def test_a_row_without_a_subject_is_no_held_subjects_and_goes(store):
    parts = rows(0, 3)
    parts[1]["case_id"] = None
    load(store, [parts])
    assert store.destroy(ID, subject_column="case_id", keep=("C0",)) == 2
    assert [r["case_id"] for r in table_rows(store, "received_dsa_1_referrals")] == ["C0"]


def test_a_delete_that_leaves_rows_rolls_back_and_fails(store, monkeypatch):
    from transfers.errors import DestructionFailed
    from transfers.receive import store as store_module

    load(store, [rows(0, 3)])
    counts = iter([1])  # the count after the DELETE says a row is left
    real = store_module.count_rows
    monkeypatch.setattr(store_module, "count_rows", lambda conn, t, where: next(counts, None) or real(conn, t, where))

    with pytest.raises(DestructionFailed, match=f"rows of delivery {ID} are still in received_dsa_1_referrals "
                                                f"after the DELETE; rolled back"):
        store.destroy(ID)
    assert len(table_rows(store, "received_dsa_1_referrals")) == 3  # nothing deleted
    assert store.delivered(ID).destroyed_at is None and store.delivered(ID).rows_destroyed == 0


def test_destroying_an_unknown_delivery_fails_naming_it(store):
    from transfers.errors import DestructionFailed

    load(store, [rows(0, 1)])
    with pytest.raises(DestructionFailed, match="delivery nope is not registered"):
        store.destroy("nope")


def test_a_store_made_before_destruction_gets_its_columns_and_reads_as_not_destroyed(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the register as the first stores made it
        conn.exec_driver_sql(
            f"CREATE TABLE {DELIVERIES_TABLE} (delivery_id TEXT PRIMARY KEY, agreement TEXT NOT NULL, "
            "agreement_version TEXT NOT NULL, flow TEXT NOT NULL, logical_date DATE NOT NULL, sender TEXT NOT NULL, "
            "manifest_sha256 TEXT NOT NULL, rows BIGINT NOT NULL, received_at DATETIME NOT NULL, "
            "destroy_by DATE NOT NULL, table_name TEXT NOT NULL)")
        conn.exec_driver_sql(f"INSERT INTO {DELIVERIES_TABLE} VALUES ('old', 'dsa-1', '1', 'referrals', '2026-11-01', "
                             "'bradford', 'aa', 0, '2026-11-02 02:00:00.000000', '2027-11-01', "
                             "'received_dsa_1_referrals')")
    engine.dispose()

    with ReceivedStore(url) as old:
        found = old.delivered("old")
        assert (found.destroyed_at, found.rows_destroyed) == (None, 0)
        with old.engine.connect() as conn:
            columns = [c["name"] for c in sa.inspect(conn).get_columns(DELIVERIES_TABLE)]
        assert columns[-2:] == ["destroyed_at", "rows_destroyed"]
        assert [d.delivery_id for d in old.due(datetime(2027, 11, 1, tzinfo=UTC))] == ["old"]
