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


def test_validate_asks_a_receiving_party_of_several_workers_for_a_shared_store_and_inbox(cli, world, monkeypatch):
    monkeypatch.setenv("TRANSFERS_PARTY", "south-yorkshire-police")
    monkeypatch.setenv("AIRFLOW_VAR_TRANSFERS_DECRYPTION_KEY", "placeholder: validate only checks it is set")
    monkeypatch.setenv("TRANSFERS_WORKERS", "many")
    monkeypatch.setenv("TRANSFERS_LEDGER_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/ledger")
    monkeypatch.setenv("TRANSFERS_WORK_STORE", "s3://isp-work/runs")
    monkeypatch.setenv("TRANSFERS_LEDGER_ANCHOR_URL", "s3://isp-anchor/ledger.head")
    for name in ("TRANSFERS_INBOX_DIR", "TRANSFERS_MAILBOX", "TRANSFERS_STORE_URL"):
        monkeypatch.delenv(name, raising=False)
    world.connections.clear()  # every connection is the senders': the police need none of them

    result = cli("validate")

    assert result.exit_code == 2
    assert "2 problem(s)" in result.output
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "TRANSFERS_STORE_URL: TRANSFERS_WORKERS=many" in output
    assert "TRANSFERS_INBOX_DIR: TRANSFERS_WORKERS=many" in output and "mash-referrals.A" in output

    monkeypatch.setenv("TRANSFERS_STORE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/received")
    monkeypatch.setenv("TRANSFERS_MAILBOX", "syp_mailbox")
    fixed = cli("validate")
    assert "TRANSFERS_STORE_URL" not in fixed.output and "TRANSFERS_INBOX_DIR" not in fixed.output
