from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from transfers.agreement import Source
from transfers.connections import ConnInfo
from transfers.devkit import synthetic
from transfers.errors import SourceError
from transfers.settings import PROJECT_ROOT
from transfers.sources import as_text, extract, strip_sql_comments

DAY = date(2026, 11, 23)


def csv_source(**kw) -> Source:
    return Source(kind="csv", connection="exports", path="ed/attendances_{ds}.csv", **kw)


def test_csv_extract_in_batches_keeps_text_as_text(tmp_path):
    frame = synthetic.ed_attendances(7, DAY)
    frame.loc[0, "attendance_id"] = "00123"  # a leading zero must survive
    synthetic.write_ed_csv(tmp_path, DAY, frame)
    conn = ConnInfo("exports", "fs", extra={"path": str(tmp_path)})

    batches = list(extract(csv_source(batch_rows=3), conn, config_dir=tmp_path, logical_date=DAY))

    assert [len(b) for b in batches] == [3, 3, 1]
    assert batches[0].loc[0, "attendance_id"] == "00123"


def test_missing_extract_names_the_file(tmp_path):
    conn = ConnInfo("exports", "fs", extra={"path": str(tmp_path)})
    with pytest.raises(SourceError, match=r"attendances_2026-11-23\.csv"):
        list(extract(csv_source(), conn, config_dir=tmp_path, logical_date=DAY))


def test_broken_csv_names_the_file_and_line(tmp_path):
    path = tmp_path / "ed" / "attendances_2026-11-23.csv"
    path.parent.mkdir()
    path.write_text("a,b\n1,2\n3,4,5\n")
    conn = ConnInfo("exports", "fs", extra={"path": str(tmp_path)})
    with pytest.raises(SourceError) as caught:
        list(extract(csv_source(), conn, config_dir=tmp_path, logical_date=DAY))
    assert "attendances_2026-11-23.csv" in str(caught.value) and "line 3" in str(caught.value)


def test_sqlite_extract_binds_the_logical_date_and_returns_iso_text(tmp_path):
    db = tmp_path / "cases.db"
    rows = synthetic.referrals(5, DAY)
    other_day = synthetic.referrals(3, date(2026, 11, 1))
    other_day["referral_id"] = ["R900000", "R900001", "R900002"]
    other_day["referral_date"] = "2026-11-01"
    synthetic.write_referrals_table(f"sqlite:///{db}", pd.concat([rows, other_day]))
    (tmp_path / "q.sql").write_text("SELECT * FROM referrals WHERE referral_date = :ds ORDER BY referral_id")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql")

    batches = list(extract(source, ConnInfo("cs_case_db", "sqlite", host=str(db)), config_dir=tmp_path,
                           logical_date=DAY))

    got = pd.concat(batches)
    assert got["referral_id"].tolist() == rows["referral_id"].tolist()
    assert got["date_of_birth"].tolist() == rows["date_of_birth"].tolist()


def test_sql_error_names_the_query_file_and_connection(tmp_path):
    db = tmp_path / "cases.db"
    synthetic.write_referrals_table(f"sqlite:///{db}", synthetic.referrals(2, DAY))
    (tmp_path / "q.sql").write_text("SELECT no_such_column FROM referrals")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql")
    with pytest.raises(SourceError) as caught:
        list(extract(source, ConnInfo("cs_case_db", "sqlite", host=str(db)), config_dir=tmp_path, logical_date=DAY))
    assert "q.sql" in str(caught.value) and "cs_case_db" in str(caught.value)


def test_shipped_query_with_ds_in_its_comments_runs_on_sqlite(tmp_path):
    # The sample query's comments mention :ds; only the real bind may count.
    db = tmp_path / "cases.db"
    synthetic.write_referrals_table(f"sqlite:///{db}", synthetic.referrals(4, DAY))
    source = Source(kind="sql", connection="cs_case_db", query="sql/mash_referrals.sql")

    batches = list(extract(source, ConnInfo("cs_case_db", "sqlite", host=str(db)),
                           config_dir=PROJECT_ROOT / "config", logical_date=DAY))

    assert sum(len(b) for b in batches) == 4


def test_comment_stripping_keeps_quoted_text_and_drops_comments():
    query = "SELECT '--not a comment', \"a/*b*/\" -- says :ds\nFROM t /* :ds */ WHERE d = :ds AND s = 'it''s'"
    assert strip_sql_comments(query) == "SELECT '--not a comment', \"a/*b*/\" \nFROM t   WHERE d = :ds AND s = 'it''s'"


def _write_export(tmp_path, data: bytes):
    path = tmp_path / "ed" / "attendances_2026-11-23.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return ConnInfo("exports", "fs", extra={"path": str(tmp_path)})


def test_a_nul_byte_in_a_field_is_an_error_naming_row_and_column_not_a_cut_value(tmp_path):
    # pandas' C parser would end the field at the NUL and keep "Smi": a silent change of the record.
    conn = _write_export(tmp_path, b'attendance_id,surname\nA1,Jones\nA2,"Smi\x00th, Jo"\nA3,Brown\n')

    with pytest.raises(SourceError) as caught:
        list(extract(csv_source(), conn, config_dir=tmp_path, logical_date=DAY))

    message = str(caught.value)
    assert "attendances_2026-11-23.csv" in message
    assert "row 2 (line 3), column 'surname'" in message and "NUL byte" in message
    assert "Smi" not in message and "Jones" not in message  # names the place, never the value


def test_non_utf8_text_names_the_row_and_column_not_a_byte_offset(tmp_path):
    # Latin-1 "é" (0xE9) in the third data row, after a multi-line quoted field.
    conn = _write_export(tmp_path, b'attendance_id,surname\nA1,"Jones\nJr"\nA2,Smith\nA3,Ren\xe9\n')

    with pytest.raises(SourceError) as caught:
        list(extract(csv_source(), conn, config_dir=tmp_path, logical_date=DAY))

    message = str(caught.value)
    assert "row 3 (line 5), column 'surname'" in message and "not UTF-8" in message
    assert "byte" not in message and "Ren" not in message


def test_comment_stripping_knows_dollar_quoting_and_keeps_xor():
    # sqlparse's lexer, not a hand-written scanner: "--" inside $$...$$ is text, "#" is PostgreSQL's XOR.
    query = "SELECT $$a -- :ds$$, 5 # 3 -- says :ds\r\nFROM t -- end :ds"
    assert strip_sql_comments(query) == "SELECT $$a -- :ds$$, 5 # 3 \r\nFROM t "


def test_sqlite_integers_beyond_2_53_survive_a_null_in_the_same_batch(tmp_path):
    # pandas used to infer int64 + None as float64: 9007199254740993 was extracted as ...992.
    import sqlite3

    db = tmp_path / "cases.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (id INTEGER, big INTEGER, score REAL, note TEXT)")
        con.executemany("INSERT INTO t VALUES (?, ?, ?, ?)",
                        [(1, 9007199254740993, 12.0, "a"), (2, None, 0.1, None), (3, -1, None, "")])
    (tmp_path / "q.sql").write_text("SELECT * FROM t ORDER BY id")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql")

    [batch] = extract(source, ConnInfo("cs_case_db", "sqlite", host=str(db)), config_dir=tmp_path, logical_date=DAY)

    assert batch.to_dict("list") == {"id": ["1", "2", "3"], "big": ["9007199254740993", None, "-1"],
                                     "score": ["12", "0.1", None], "note": ["a", None, ""]}


def test_a_binary_value_is_refused_whatever_buffer_the_driver_gives(tmp_path):
    import sqlite3

    db = tmp_path / "cases.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (id TEXT, raw BLOB)")
        con.execute("INSERT INTO t VALUES ('R1', x'00ff')")
    (tmp_path / "q.sql").write_text("SELECT * FROM t")
    source = Source(kind="sql", connection="cs_case_db", query="q.sql")
    with pytest.raises(SourceError, match="binary column"):
        list(extract(source, ConnInfo("cs_case_db", "sqlite", host=str(db)), config_dir=tmp_path, logical_date=DAY))
    with pytest.raises(SourceError, match="binary column"):
        as_text(pd.DataFrame({"raw": [memoryview(b"\x00")]}, dtype=object))  # psycopg2's bytea


def test_as_text_leaves_text_alone_and_renders_everything_else_as_before():
    import datetime as dt

    frame = pd.DataFrame({
        "s": ["a", None, float("nan"), ""],
        "mixed": ["a", 12, 12.5, dt.date(2026, 11, 23)],
        "when": [dt.datetime(2026, 11, 23, 10, 11, 12, 999), None, pd.NaT, pd.Timestamp("2026-01-02 03:04:05.6")],
        "f": [12.0, 1e20, float("nan"), -0.0],
    }, dtype=object)

    out = as_text(frame)

    assert out.to_dict("list") == {
        "s": ["a", None, None, ""],
        "mixed": ["a", "12", "12.5", "2026-11-23"],
        "when": ["2026-11-23T10:11:12", None, None, "2026-01-02T03:04:05"],
        "f": ["12", "100000000000000000000", None, "0"],
    }
    assert all(dtype.kind == "O" for dtype in out.dtypes)
