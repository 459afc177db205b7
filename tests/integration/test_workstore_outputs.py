"""What a task writes beside its run's working files (reports, its part of the run's log), published to the
S3 work store so a reader on another machine and the purge on any worker see it.

Real parts as in ``test_workstore.py`` (whose fixtures these tests share): moto's S3 server (no real S3 can run
here), PostgreSQL as the source and the shared ledger, the DAG file's own task wrapper run on two worker homes,
and a third home standing for the API server (the UI's own mirroring function, Airflow's connection lookup) or
an IG officer's machine (``transfers report quality``). Only Airflow's task context is stood in for.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.integration import test_workstore as shared
from tests.integration.conftest import LOGICAL_DATE
from tests.integration.test_workstore import FLOW, PARTNER, PREFIX, keys, run_task
from transfers.devkit import synthetic

pytestmark = pytest.mark.integration

store, workers = shared.store, shared.workers  # the work store's fixtures: the bucket, two worker homes

REPORTS = f"{PREFIX}/reports/mash-referrals/A/"
LOGS = f"{PREFIX}/logs/mash-referrals/A/{LOGICAL_DATE}/"
SCORECARD = f"quality_A_{LOGICAL_DATE}.html"


@pytest.fixture
def ledger_url():
    from tests.integration.conftest import throwaway_pg_database

    with throwaway_pg_database("isp_outputs_ledger") as (url, _name):
        yield url


def output_files(home: Path) -> list[Path]:
    """Report, notice and log files a worker holds under its home."""
    return sorted(p for place in ("reports", "notices", "logs", "tasks") for p in (home / place).rglob("*")
                  if p.is_file())


def body(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def quality_on_two_workers(workers) -> None:
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[1], "extract")
    run_task(workers, workers.homes[0], "quality")


def test_a_quality_report_written_on_one_worker_is_published_and_a_reader_with_another_home_sees_it(
        world, store, workers, tmp_path):
    from transfers.reports.files import flow_reports
    from transfers.settings import Settings
    from transfers_airflow.ui.app import _mirror

    client, bucket, _conn = store
    quality_on_two_workers(workers)

    published = keys(client, bucket, REPORTS)
    assert {f"{REPORTS}{SCORECARD}", f"{REPORTS}quality_A_{LOGICAL_DATE}.json"} <= set(published)
    parts = keys(client, bucket, LOGS)
    assert len(parts) == 3  # each task's part of the run's log is its own object, none merged over another
    assert all(b"work files checked out" in body(client, bucket, k) for k in parts)
    assert any(b"quality checked" in body(client, bucket, k) for k in parts)
    # The workers keep none of it: the store's copy is the one every reader and the purge see.
    assert output_files(workers.homes[0]) == output_files(workers.homes[1]) == []

    workers.monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "api-server"))
    reader = Settings()
    assert flow_reports(reader, "mash-referrals", "A") == []  # before the mirror: nothing in this home
    _mirror(reader, "mash-referrals", "A")  # what the UI's flow pages do first (Airflow's connection lookup)
    listed = {r.name: r for r in flow_reports(reader, "mash-referrals", "A")}

    assert SCORECARD in listed
    assert listed[SCORECARD].path.read_bytes() == body(client, bucket, f"{REPORTS}{SCORECARD}")
    assert listed[SCORECARD].path.stat().st_mode & 0o077 == 0  # owner-only, as the run wrote it
    stamp = datetime.fromtimestamp(listed[SCORECARD].path.stat().st_mtime, UTC)
    assert abs((stamp - client.head_object(Bucket=bucket, Key=f"{REPORTS}{SCORECARD}")["LastModified"])
               .total_seconds()) < 1  # dated as the store's copy: this home's own purge keeps the same period
    assert _mirrored_again(reader) == 0  # only new or changed files are downloaded


def _mirrored_again(settings) -> int:
    from transfers.workstore.mirror import mirror_reports
    from transfers_airflow.resolvers import connection

    return mirror_reports(settings, "mash-referrals", "A", connection)


def test_transfers_report_quality_on_another_machine_shows_the_published_report(world, store, workers, tmp_path):
    import json

    from typer.testing import CliRunner

    from transfers.cli import app

    quality_on_two_workers(workers)
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "ig-officer"))

    result = CliRunner().invoke(app, ["report", "quality", FLOW, "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)  # one JSON line, nothing else on stdout
    assert shown["scorecard"]["logical_date"] == LOGICAL_DATE.isoformat() and shown["scorecard"]["rows"] == 40
    assert Path(shown["files"]["scorecard"]).is_relative_to(tmp_path / "ig-officer")


def test_a_blocked_quality_run_publishes_its_report_and_log_but_commits_no_working_file(
        world, store, workers, pg_source):
    from airflow.sdk.exceptions import AirflowFailException

    client, bucket, _conn = store
    frame = synthetic.referrals(40, LOGICAL_DATE, defects=["nhs_check_digit"])
    synthetic.write_referrals_table(pg_source[0], frame)
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[1], "extract")
    working = {k: v for k, v in keys(client, bucket).items() if not k.startswith((f"{PREFIX}/logs/",))}

    with pytest.raises(AirflowFailException, match="blocked by data quality: accuracy"):
        run_task(workers, workers.homes[0], "quality")

    published = keys(client, bucket, REPORTS)
    rectification = f"{REPORTS}rectification_A_{LOGICAL_DATE}.csv"
    assert f"{REPORTS}{SCORECARD}" in published and rectification in published
    notice = body(client, bucket, rectification).decode()
    assert any(key in notice for key in frame["referral_id"])  # the data owner's notice names the record key
    unchanged = {k: v for k, v in keys(client, bucket).items()
                 if not k.startswith((f"{PREFIX}/logs/", f"{PREFIX}/reports/"))}
    assert unchanged == working  # the failed task committed none of its working files
    logs = b"".join(body(client, bucket, k) for k in keys(client, bucket, LOGS))
    assert b"blocked" in logs
    for value in frame["nhs_number"]:  # no record value in any log part, nor in the notice (keys, not values)
        assert str(value).encode() not in logs and str(value) not in notice
    assert output_files(workers.homes[0]) == []


def test_the_purge_deletes_a_published_report_and_log_past_their_periods_with_evidence(world, store, workers):
    from transfers.ledger.records import Purged
    from transfers.reports.files import flow_reports
    from transfers.retention import execute_purge, plan_purge
    from transfers.settings import Settings

    client, bucket, conn = store
    quality_on_two_workers(workers)
    run_task(workers, workers.homes[1], "cleanup")  # the run ended: its marker is gone
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(workers.homes[1].parent / "api-server"))
    reader = Settings()
    assert _mirrored_again(reader) == 4  # the UI's home holds copies of the published reports
    published = {k: hashlib.sha256(body(client, bucket, k)).hexdigest()
                 for k in [*keys(client, bucket, REPORTS), *keys(client, bucket, f"{PREFIX}/logs/")]}
    workers.monkeypatch.setenv("TRANSFERS_HOME", str(workers.homes[0]))  # the retention DAG's worker
    settings = Settings()

    def connection(conn_id: str):
        return conn if conn_id == "work_s3" else world.connections[conn_id]

    # Past retention.logs (P30D) but not retention.reports (P90D): only the log parts go.
    between = datetime.now(UTC) + timedelta(days=45)
    with settings.open_ledger() as ledger:
        items = plan_purge(settings, world.config, ledger, now=between, only_flow=FLOW, connection=connection)
        first = execute_purge(items, settings, world.config, ledger, connection, now=between)
    assert first.failed == []
    assert keys(client, bucket, f"{PREFIX}/logs/") == {}
    assert set(keys(client, bucket, REPORTS)) == {k for k in published if k.startswith(REPORTS)}

    later = datetime.now(UTC) + timedelta(days=100)
    with settings.open_ledger() as ledger:
        items = plan_purge(settings, world.config, ledger, now=later, only_flow=FLOW, connection=connection)
        second = execute_purge(items, settings, world.config, ledger, connection, now=later)
        purged = {p.path: p for p in ledger.records(Purged, flow=FLOW) if p.place in ("reports", "logs")}

    assert second.failed == []
    assert keys(client, bucket, REPORTS) == {}
    assert {path: p.sha256 for path, p in purged.items()} == {f"s3://{bucket}/{k}": d for k, d in published.items()}
    assert {(p.place, p.rule, p.store, p.verified) for p in purged.values()} == {
        ("reports", "retention.reports P90D", "s3", "no version or delete marker left (ListObjectVersions)"),
        ("logs", "retention.logs P30D", "s3", "no version or delete marker left (ListObjectVersions)")}
    assert all(p.size and p.size > 0 for p in purged.values())
    assert {str(p.logical_date) for p in purged.values()} == {LOGICAL_DATE.isoformat()}

    # The UI's next listing drops its copies of the purged reports, recording each as the purge would.
    held = {r.name for r in flow_reports(reader, "mash-referrals", "A")}
    assert len(held) == 4
    assert _mirrored_again(reader) == 0
    assert flow_reports(reader, "mash-referrals", "A") == []
    with settings.open_ledger() as ledger:
        copies = [p for p in ledger.records(Purged, flow=FLOW) if p.store == "local" and p.place == "reports"]
    assert {Path(p.path).name for p in copies} == held
    assert all(p.sha256 and p.note and p.note.startswith(f"mirror of s3://{bucket}/") for p in copies)


NOTICE = "mash-referrals_A_withdrawal-notice_0123456789ab.json.pgp"


def _notice_then(fail: bool):
    """A step that writes a notice where ``send_notices`` makes one (encrypted to the partner), then ends."""
    from transfers.errors import DeliveryUnavailable

    def step(run, resolvers, ledger):
        folder = run.settings.layout.notices_dir(run.ref.agreement.id, run.ref.flow.id, PARTNER)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / NOTICE).write_bytes(b"-----BEGIN PGP MESSAGE----- (stands for the notice)")
        if fail:
            raise DeliveryUnavailable("the partner's server went away")

    return step


def test_a_notice_is_published_kept_on_its_worker_after_a_failure_and_gone_after_a_success(world, store, workers):
    from transfers.errors import DeliveryUnavailable
    from transfers.pipeline import Step

    client, bucket, _conn = store
    key = f"{PREFIX}/notices/mash-referrals/A/{PARTNER}/{NOTICE}"
    home = workers.homes[0]
    local = home / "notices" / "mash-referrals" / "A" / PARTNER / NOTICE
    run_task(workers, workers.homes[1], "check_agreement")

    with pytest.raises(DeliveryUnavailable, match="the partner.s server went away"):  # retriable: raised as it is
        run_task(workers, home, Step("notify", _notice_then(fail=True), "notifying"))
    assert key in keys(client, bucket)  # published whatever the outcome
    assert local.is_file()  # a retry on this worker re-sends the same bytes

    run_task(workers, home, Step("notify", lambda run, resolvers, ledger: None, "notifying"))
    assert not local.exists()  # a success here: the store holds it alike, the worker keeps nothing
    assert key in keys(client, bucket)

    run_task(workers, workers.homes[1], Step("notify", _notice_then(fail=False), "notifying"))
    assert output_files(workers.homes[1]) == []

    # The purge, on either worker, deletes the published notice on its period (retention.notices P90D).
    from transfers.ledger.records import Purged
    from transfers.retention import execute_purge, plan_purge
    from transfers.settings import Settings

    run_task(workers, workers.homes[1], "cleanup")
    settings = Settings()
    later = datetime.now(UTC) + timedelta(days=100)

    def connection(conn_id: str):
        return _conn if conn_id == "work_s3" else world.connections[conn_id]

    with settings.open_ledger() as ledger:
        items = plan_purge(settings, world.config, ledger, now=later, only_flow=FLOW, connection=connection)
        assert execute_purge(items, settings, world.config, ledger, connection, now=later).failed == []
        [purged] = [p for p in ledger.records(Purged, flow=FLOW) if p.place == "notices"]
    assert key not in keys(client, bucket)
    assert (purged.path, purged.recipient, purged.rule) == (f"s3://{bucket}/{key}", PARTNER, "retention.notices P90D")
