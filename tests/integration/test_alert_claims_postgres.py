"""Alert claims in a PostgreSQL ledger database: processes racing for one alert, as tasks on several Celery
workers do (each with its own home, so no folder is shared): exactly one of them claims it."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from tests.integration.conftest import throwaway_pg_database
from transfers.alert_claims import claim_once, release_claim

pytestmark = pytest.mark.integration

KEY = "mash-referrals.A scheduled__2026-11-25T02:00:00+00:00"


def _claim(url: str, start: Any, results: Any, ready: Any) -> None:
    import sqlalchemy as sa

    sa.create_engine(url).connect().close()  # the driver loaded and the server reached before the start
    ready.wait(120)
    start.wait(30)
    results.put(claim_once(url, KEY))


def test_of_eight_processes_racing_for_one_alert_exactly_one_claims_it():
    with throwaway_pg_database("alert_claims") as (url, _name):
        context = multiprocessing.get_context("spawn")
        start, results, ready = context.Event(), context.Queue(), context.Barrier(9)
        racers = [context.Process(target=_claim, args=(url, start, results, ready)) for _ in range(8)]
        for racer in racers:
            racer.start()
        ready.wait(120)  # every racer has imported and connected: they start together (the table is made then too)
        start.set()
        outcomes = [results.get(timeout=60) for _ in racers]
        for racer in racers:
            racer.join(30)
        assert sorted(outcomes) == [False] * 7 + [True]
        release_claim(url, KEY)  # the message failed to go: the next attempt claims it again
        assert claim_once(url, KEY)
