"""The COPY extract (transfers.pgcopy) gives PostgreSQL's rows as the same text as the row-by-row path.

A pseudonym is a hash of that text and a quality check reads it: the two paths are compared on
a table of every type COPY handles, with the values where Python and PostgreSQL write numbers
and times differently (12.0, 1e20, NaN, -0, fractions of a second, a session time zone).
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

import transfers.sources as sources
from tests.integration.conftest import throwaway_pg_database
from transfers.agreement import Source
from transfers.connections import ConnInfo
from transfers.errors import SourceError

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 23)

TABLE = """
CREATE TABLE every_type (
    n int, t text, v varchar(20), c char(5), i int, b bigint, s smallint, num numeric, f float8, r real,
    d date, ts timestamp, tz timestamptz, ok boolean, u uuid, made_on date
)"""

ROWS = """
INSERT INTO every_type VALUES
 (1, 'plain', 'v', 'ab', 12, 9007199254740993, -3, 12.50, 12.0, 0.1, '2026-11-23', '2026-11-23 10:11:12.999999',
  '2026-11-23 10:11:12.5+00', true, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-11-23'),
 (2, '', NULL, NULL, NULL, NULL, NULL, 'NaN', 1e20, 1234567, '0005-01-01', '1999-12-31 23:59:59',
  '2026-06-01 00:00:00+01', false, NULL, '2026-11-23'),
 (3, E'line\\nbreak, "quoted"', 'x', 'abcde', 0, 0, 0, -0.001, 'NaN', 'Infinity', '2026-02-28', '2026-11-23 00:00:00',
  '2026-11-23 23:59:59.999+00', NULL, NULL, '2026-11-23'),
 (4, 'NULL', 'NA', '', -1, -1, -1, 100000000000000000000.000001, '-0', -1.5e-7, NULL, NULL, NULL, true, NULL,
  '2026-11-23'),
 (5, '%', 'é', 'z', 1, 1, 1, 0, 0.1, 3.4028235e38, '2026-11-23', '2026-11-23 10:11:12', '2026-11-23 10:11:12+00',
  false, NULL, '2026-11-23'),
 (6, 't', 't', 't', 2, 2, 2, 1, 1234567890123456.5, 'NaN', '2026-11-23', '2026-11-23 10:11:12', '2026-11-23 10:11:12+00',
  true, NULL, '2026-11-23'),
 (7, 't', 't', 't', 2, 2, 2, 1, '-Infinity', '-0', '2026-11-23', '2026-11-23 10:11:12', '2026-11-23 10:11:12+00',
  true, NULL, '2026-11-23'),
 (8, 't', 't', 't', 2, 2, 2, 1, 0.30000000000000004, 1e-10, '2026-11-23', '2026-11-23 10:11:12',
  '2026-11-23 10:11:12+00', true, NULL, '2026-11-23'),
 (9, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-11-22')
"""

QUERY = "SELECT * FROM every_type WHERE made_on = :ds AND t NOT LIKE 'zz%' ORDER BY n;"


@pytest.fixture(scope="module")
def every_type_db():
    with throwaway_pg_database("isp_copy") as (url, name):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            # Not UTC: a timestamptz is written in the session's zone, with its offset, on both paths.
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET timezone = \'Asia/Kolkata\''))
            conn.execute(sa.text(f'ALTER DATABASE "{name}" SET datestyle = \'German, DMY\''))
            conn.execute(sa.text(TABLE))
            conn.execute(sa.text(ROWS))
        engine.dispose()
        yield name


def _extract(tmp_path, name: str, query: str = QUERY, batch_rows: int = 3) -> list[pd.DataFrame]:
    (tmp_path / "q.sql").write_text(query, encoding="utf-8")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql", batch_rows=batch_rows)
    conn = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=name)
    return list(sources.extract(source, conn, config_dir=tmp_path, logical_date=DAY))


def _row_by_row(monkeypatch) -> None:
    monkeypatch.setattr(sources, "_copy", lambda *args, **kwargs: None)


def _copy_used(monkeypatch) -> list[str]:
    import transfers.pgcopy as pgcopy

    used: list[str] = []
    real = pgcopy._stream
    monkeypatch.setattr(pgcopy, "_stream", lambda *a, **k: (used.append("copy"), real(*a, **k))[1])
    return used


def test_copy_and_row_by_row_give_identical_text_for_every_type(tmp_path, monkeypatch, every_type_db):
    used = _copy_used(monkeypatch)
    copied = _extract(tmp_path, every_type_db)
    assert used == ["copy"]
    monkeypatch.undo()
    _row_by_row(monkeypatch)
    fetched = _extract(tmp_path, every_type_db)

    assert [len(b) for b in copied] == [len(b) for b in fetched] == [3, 3, 2]
    for ours, theirs in zip(copied, fetched, strict=True):
        assert list(ours.columns) == list(theirs.columns)
        assert all(dtype.kind == "O" for dtype in ours.dtypes)
        assert ours.to_dict("records") == theirs.to_dict("records")
        for column in ours.columns:  # str or None, never a float NaN standing in for a missing value
            assert all(v is None or type(v) is str for v in ours[column])
    got = pd.concat(copied, ignore_index=True)
    assert got.loc[0, "f"] == "12" and got.loc[1, "f"] == "100000000000000000000"
    assert got.loc[0, "ts"] == "2026-11-23T10:11:12" and got.loc[0, "tz"] == "2026-11-23T15:41:12+05:30"
    assert got.loc[1, "t"] == "" and got.loc[2, "f"] is None and got.loc[3, "f"] == "0"


def test_an_empty_result_keeps_its_columns(tmp_path, every_type_db):
    [batch] = _extract(tmp_path, every_type_db, "SELECT n, f FROM every_type WHERE false")
    assert list(batch.columns) == ["n", "f"] and len(batch) == 0


def test_a_type_copy_cannot_render_keeps_the_row_by_row_path_and_its_errors(tmp_path, monkeypatch, every_type_db):
    used = _copy_used(monkeypatch)
    [batch] = _extract(tmp_path, every_type_db, "SELECT n, interval '1 day 2 hours' AS gap, '{\"a\": 1}'::json AS j "
                                                 "FROM every_type WHERE n = 1")
    assert used == []
    assert batch.to_dict("records") == [{"n": "1", "gap": "1 day, 2:00:00", "j": "{'a': 1}"}]


def test_a_binary_column_is_refused_on_both_paths_naming_the_query(tmp_path, monkeypatch, every_type_db):
    query = "SELECT n, 'x'::bytea AS raw FROM every_type"
    with pytest.raises(SourceError, match=r"q\.sql: the source returned a binary column \('raw'\); select text"):
        _extract(tmp_path, every_type_db, query)
    _row_by_row(monkeypatch)  # psycopg2 gives bytea as a memoryview: it was written as "<memory at 0x...>"
    with pytest.raises(SourceError, match="the source returned a binary column; select text columns only"):
        _extract(tmp_path, every_type_db, query)


def test_a_failing_query_names_the_query_file_and_connection_as_before(tmp_path, every_type_db):
    with pytest.raises(SourceError) as caught:
        _extract(tmp_path, every_type_db, "SELECT no_such_column FROM every_type")
    assert "q.sql failed: column \"no_such_column\" does not exist" in str(caught.value)
    assert "cs_case_db" in str(caught.value)
    with pytest.raises(SourceError, match=r"q\.sql failed: division by zero"):  # an error while COPY streams
        _extract(tmp_path, every_type_db, "SELECT n, 1 / (n - 5) AS x FROM every_type ORDER BY n")


def test_a_reader_that_stops_early_ends_the_copy(tmp_path, every_type_db):
    (tmp_path / "q.sql").write_text("SELECT g::text AS g FROM generate_series(1, 500000) g", encoding="utf-8")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql", batch_rows=1000)
    conn = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=every_type_db)
    batches = sources.extract(source, conn, config_dir=tmp_path, logical_date=DAY)
    assert next(batches)["g"].tolist()[:2] == ["1", "2"]
    batches.close()  # the thread feeding the pipe ends, the connection is returned
    assert len(next(sources.extract(source, conn, config_dir=tmp_path, logical_date=DAY))) == 1000
