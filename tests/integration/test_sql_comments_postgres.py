"""A source query's comments are stripped by sqlparse's lexer, against the real PostgreSQL.

A ``:ds`` in a comment must not become a bind, while ``--`` inside PostgreSQL's
dollar quoting and ``#`` (XOR) are query text the database must still receive.
"""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from tests.integration.conftest import throwaway_pg_database
from transfers.agreement import Source
from transfers.connections import ConnInfo
from transfers.sources import extract

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 23)

QUERY = """-- nightly referrals for :ds
SELECT id, $$not -- a comment$$ AS note, (5 # 3) AS xor /* :ds */
FROM cases
WHERE made_on = :ds -- only :ds
"""


def test_comments_go_but_dollar_quoted_text_and_xor_reach_postgres(tmp_path):
    with throwaway_pg_database("isp_sqlc") as (url, name):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE cases (id text, made_on date)"))
            conn.execute(sa.text("INSERT INTO cases VALUES ('R1', '2026-11-23'), ('R2', '2026-11-22')"))
        engine.dispose()
        (tmp_path / "sql").mkdir()
        (tmp_path / "sql" / "cases.sql").write_text(QUERY, encoding="utf-8")
        source = Source(kind="sql", connection="cs_case_db", query="sql/cases.sql")
        conn_info = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=name)

        batches = list(extract(source, conn_info, config_dir=tmp_path, logical_date=DAY))

    rows = [row for batch in batches for row in batch.to_dict("records")]
    assert [r["id"] for r in rows] == ["R1"]
    assert rows[0]["note"] == "not -- a comment"
    assert str(rows[0]["xor"]) == "6"
