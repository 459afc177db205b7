"""The subject register's tables on a fresh PostgreSQL ledger, opened by several processes at the same moment,
as the first ``prepare_part`` tasks of a night on several Celery workers do: every one of them opens it.

(Before the creators took turns, the second to create a table failed on a duplicate table or type, and
that worker's first prepare part failed.)
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from tests.integration.conftest import throwaway_pg_database

pytestmark = pytest.mark.integration


def _open(url: str, start: Any, results: Any, ready: Any) -> None:
    import sqlalchemy as sa

    from transfers.privacy.subjects import SubjectIndex

    sa.create_engine(url).connect().close()  # the driver loaded and the server reached before the start
    ready.wait(120)
    start.wait(30)
    try:
        SubjectIndex(url).close()
        results.put("opened")
    except Exception as exc:  # the test shows which error, if any
        results.put(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


def test_eight_processes_opening_the_register_on_a_fresh_postgresql_ledger_at_once_all_succeed():
    context = multiprocessing.get_context("spawn")
    for _round in range(3):  # each round a fresh database: the race is only on the first opening
        with throwaway_pg_database("subject_race") as (url, _name):
            start, results, ready = context.Event(), context.Queue(), context.Barrier(9)
            openers = [context.Process(target=_open, args=(url, start, results, ready)) for _ in range(8)]
            for opener in openers:
                opener.start()
            ready.wait(120)  # every opener has imported and connected: they start together
            start.set()
            outcomes = [results.get(timeout=120) for _ in openers]
            for opener in openers:
                opener.join(30)
            assert outcomes == ["opened"] * 8, outcomes
