"""``transfers validate`` says what a deployment of several workers lacks, with the agreements' own problems."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_validate_lists_what_several_workers_need_and_accepts_one_worker_as_it_is(cli, world, monkeypatch):
    assert cli("validate").exit_code == 0  # one worker (the default): SQLite ledger, local work store, no anchor

    monkeypatch.setenv("TRANSFERS_WORKERS", "many")
    result = cli("validate")

    assert result.exit_code == 2
    assert "3 problem(s)" in result.output
    for setting in ("TRANSFERS_LEDGER_URL", "TRANSFERS_WORK_STORE", "TRANSFERS_LEDGER_ANCHOR_URL"):
        assert f"{setting}: TRANSFERS_WORKERS=many" in result.output


def test_validate_names_a_distributed_executor_as_the_reason(cli, world, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("TRANSFERS_WORK_STORE", "s3://isp-work/runs")
    monkeypatch.setenv("TRANSFERS_LEDGER_ANCHOR_URL", "s3://isp-anchor/ledger.head")

    result = cli("validate")

    assert result.exit_code == 2
    assert "TRANSFERS_LEDGER_URL: Airflow's executor is CeleryExecutor" in result.output
    assert "TRANSFERS_WORK_STORE:" not in result.output
