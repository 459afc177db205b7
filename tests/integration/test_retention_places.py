"""Retention in every place with a controlled clock: local dirs, an S3 endpoint, and the real sshd.

The S3 archive is moto's ``ThreadedMotoServer``: a real S3 HTTP endpoint on
127.0.0.1 (boto3 talks to it over the network, with versioning on). It stands in
for S3 because no real S3 can run here; nothing in the code under test is
mocked, and the code reads the endpoint from the connection as it would for
MinIO or AWS. The SFTP server is the private OpenSSH ``sshd``, the source is
PostgreSQL and the recipient's copy is made by the real pipeline.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import _free_port
from tests.integration.test_dag_run import conn_json
from transfers.cli import app
from transfers.connections import ConnInfo
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

BUCKET = "isp-archive"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A local S3 endpoint (moto server, see module docstring) with a versioned bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="eu-west-2")
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield url, client
    server.stop()


def s3_conn(url: str) -> ConnInfo:
    return ConnInfo("archive_s3", "aws", login="test", password="test",
                    extra={"endpoint_url": url, "region_name": "eu-west-2"})


@pytest.fixture
def places(world, s3_endpoint, monkeypatch):
    """The world with flow A archiving to S3 and flow B to a local directory; the CLI's environment set."""
    url, client = s3_endpoint
    prefix = f"t-{world.remote_root.name}"
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    a, b = data["flows"]
    a["retention"]["archive"] = {"period": "P30D", "bucket": BUCKET, "prefix": prefix, "connection": "archive_s3"}
    b["retention"]["archive"] = {"period": "P30D", "dir": "archive"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    world.connections["archive_s3"] = s3_conn(url)
    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(world.settings.config_dir))
    monkeypatch.setenv("TRANSFERS_KEYS_DIR", str(world.settings.keys))
    for conn_id, conn in world.connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(conn))
    runner = CliRunner()

    def cli(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    def s3_versions() -> list[tuple[str, str]]:
        page = client.list_object_versions(Bucket=BUCKET, Prefix=prefix + "/")
        return [(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]

    return world, cli, client, prefix, s3_versions


def day(n: int) -> str:
    return (datetime.now(UTC) + timedelta(days=n)).date().isoformat()


def test_each_place_is_purged_when_its_period_ends_with_every_deletion_in_the_ledger(places):
    world, cli, client, prefix, s3_versions = places
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    run_flow(world.run("mash-referrals.B"), world.resolvers())
    home = world.settings.home
    outbox = sorted((home / "outbox").rglob("*.pgp"))
    remote = world.delivered("inbound/mash") + world.delivered("inbound/ed-attendances")
    local_archive = sorted((home / "archive").rglob("*"))
    local_archive = [p for p in local_archive if p.is_file()]
    archived = s3_versions()
    # Each delivery is a data file, the manifest's signature and the manifest.
    assert len(outbox) == 2 and len(remote) == 2 and len(local_archive) == 3  # flow B
    assert len(archived) == 3  # flow A
    # Someone overwrote one archived object: a versioned bucket now holds two versions of it.
    key = next(k for k, _v in archived if k.endswith(".pgp"))
    client.put_object(Bucket=BUCKET, Key=key, Body=b"overwritten")
    assert len(s3_versions()) == 4

    # Day 10: past staging (P7D) only.
    assert cli("purge", "--as-of", day(10)).exit_code == 0
    assert not any(p.exists() for p in outbox)
    assert all(p.exists() for p in remote + local_archive) and len(s3_versions()) == 4

    # Day 20: past remote (P14D): the copies on the recipient's sshd go.
    assert cli("purge", "--as-of", day(20)).exit_code == 0
    assert not any(p.exists() for p in remote)
    assert all(p.exists() for p in local_archive) and len(s3_versions()) == 4
    run_logs = sorted((home / "logs").rglob("*.log"))
    assert len(run_logs) == 2  # one per flow run, still within logs (P30D)

    # Day 40: past archive and logs (P30D): local archive, every S3 version and marker, the run logs go.
    done = cli("purge", "--as-of", day(40))
    assert done.exit_code == 0, done.output
    assert not any(p.exists() for p in local_archive)
    assert s3_versions() == []
    assert not any(p.exists() for p in run_logs)
    # Reports (P90D) are still within their period and kept.
    assert list((home / "reports").rglob("*.html"))

    purges = list(world.settings.open_ledger().entries(kind="purge"))
    by_place: dict[str, list] = {}
    for entry in purges:
        by_place.setdefault((entry.payload["place"], entry.payload["store"]), []).append(entry.payload)
    assert {k: len(v) for k, v in by_place.items()} == {
        ("outbox", "local"): 6, ("remote", "sftp"): 6, ("archive", "local"): 3, ("archive", "s3"): 3,
        ("logs", "local"): 2}
    assert sorted(p["path"] for p in by_place[("remote", "sftp")] if p["path"].endswith(".pgp")) == sorted(
        str(p.relative_to(world.remote_root.parent)) for p in remote)
    s3_data = next(p for p in by_place[("archive", "s3")] if p["path"].endswith(".pgp"))
    assert s3_data["path"] == f"s3://{BUCKET}/{key}" and s3_data["versions_deleted"] == 2
    for payload in (p for group in by_place.values() for p in group):
        for field in ("path", "size", "sha256", "created", "due", "deleted_at", "rule", "verified"):
            assert payload[field], (field, payload)
        assert payload["due"] <= payload["as_of"]  # judged as on --as-of; deleted_at is the real time
        assert datetime.fromisoformat(payload["deleted_at"]) <= datetime.now(UTC)
    assert cli("purge", "--as-of", day(40)).output.strip().startswith("nothing is due")
    verified = cli("ledger", "verify", "--as-of", day(40))
    assert verified.exit_code == 0, verified.output


def test_deletions_that_fail_because_servers_are_down_are_reported_recorded_and_retried(places, monkeypatch):
    world, cli, _client, _prefix, s3_versions = places
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    remote = world.delivered("inbound/mash")
    assert remote and len(s3_versions()) == 3  # data file, manifest signature, manifest
    closed = _free_port()  # nothing listens here: both servers are "down"
    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3", conn_json(s3_conn(f"http://127.0.0.1:{closed}")))
    sftp = world.connections["syp_sftp"]
    monkeypatch.setenv("AIRFLOW_CONN_SYP_SFTP", conn_json(ConnInfo(
        sftp.conn_id, sftp.conn_type, host=sftp.host, port=closed, login=sftp.login, extra=sftp.extra)))

    failed = cli("purge", "--as-of", day(40))
    assert failed.exit_code == 1
    assert failed.output.count("will retry on the next purge") == 6  # 3 remote files + 3 archived objects
    assert all(p.exists() for p in remote) and len(s3_versions()) == 3
    ledger = world.settings.open_ledger()
    attempts = list(ledger.entries(kind="purge-failed"))
    assert sorted(e.payload["store"] for e in attempts) == ["s3", "s3", "s3", "sftp", "sftp", "sftp"]
    gaps = cli("ledger", "verify", "--as-of", day(40))
    assert gaps.exit_code == 3
    assert "has no purge record" in gaps.output and "remote copy" in gaps.output and "archived copy" in gaps.output
    # The IG report lists each failed attempt, and the copies as held and overdue.
    out = world.root / "ig"
    assert cli("report", "ig", "--from", day(0), "--to", day(40), "--as-of", day(40), "--out", str(out)).exit_code == 0
    with (out / f"ig_{day(0)}_{day(40)}_purge_failures.csv").open() as fh:
        assert sorted(r["path"] for r in csv.DictReader(fh)) == sorted(e.payload["path"] for e in attempts)
    with (out / f"ig_{day(0)}_{day(40)}_held.csv").open() as fh:
        overdue = {r["path"] for r in csv.DictReader(fh) if r["overdue"] == "True"}
    assert {e.payload["path"] for e in attempts} <= overdue

    monkeypatch.setenv("AIRFLOW_CONN_ARCHIVE_S3", conn_json(world.connections["archive_s3"]))
    monkeypatch.setenv("AIRFLOW_CONN_SYP_SFTP", conn_json(sftp))
    retried = cli("purge", "--as-of", day(40))
    assert retried.exit_code == 0, retried.output
    assert not any(p.exists() for p in remote) and s3_versions() == []
    assert cli("ledger", "verify", "--as-of", day(40)).exit_code == 0


def test_a_copy_the_sender_may_not_remove_is_left_on_the_partners_server(places):
    world, cli, _client, _prefix, _versions = places
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][0]["retention"]["remote"] = "P14D"  # a bare period: the recipient removes its own copy
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    remote = world.delivered("inbound/mash")

    assert cli("purge", "--as-of", day(20)).exit_code == 0
    assert all(p.exists() for p in remote)
    assert not [e for e in world.settings.open_ledger().entries(kind="purge") if e.payload["place"] == "remote"]


def test_a_delivery_is_archived_before_it_is_sent_so_an_archive_outage_sends_nothing(places):
    from transfers.errors import RetriableError

    world, _cli, _client, _prefix, s3_versions = places
    working = world.connections["archive_s3"]
    world.connections["archive_s3"] = s3_conn(f"http://127.0.0.1:{_free_port()}")  # the S3 endpoint is down

    with pytest.raises(RetriableError, match="S3 endpoint"):
        run_flow(world.run("mash-referrals.A"), world.resolvers())
    ledger = world.settings.open_ledger()
    assert world.delivered("inbound/mash") == []
    assert list(ledger.entries(kind="disclosure")) == [] and s3_versions() == []

    world.connections["archive_s3"] = working
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    assert len(world.delivered("inbound/mash")) == 1
    archived = [e.payload["path"] for e in ledger.entries(kind="archive")]
    assert len(archived) == 3 and sorted(f"s3://{BUCKET}/{k}" for k, _v in s3_versions()) == sorted(archived)



def test_a_run_marks_its_date_running_until_cleanup_and_a_purge_meanwhile_keeps_its_copies(places):
    from transfers.retention import execute_purge, plan_purge
    from transfers.retention.running import marker_path
    from transfers.steps.check_agreement import check_agreement
    from transfers.steps.cleanup import cleanup
    from transfers.steps.encrypt import encrypt
    from transfers.steps.extract import extract
    from transfers.steps.prepare import prepare
    from transfers.steps.quality import quality

    world, _cli, _client, _prefix, _versions = places
    run = world.run("mash-referrals.A")
    ledger = world.settings.open_ledger()
    marker = marker_path(world.settings.home, "mash-referrals", "A", run.ds)
    resolvers = world.resolvers()
    assert check_agreement(run, resolvers, ledger)["pending"] == ["south-yorkshire-police"]
    assert marker.exists()  # from check_agreement, the run's first step
    extract(run, resolvers, ledger)
    quality(run, resolvers, ledger)
    prepare(run, resolvers, ledger)
    encrypt(run, resolvers, ledger, run.recipient("south-yorkshire-police"))
    outbox = sorted((world.settings.home / "outbox").rglob("*"))
    working = sorted((world.settings.home / "runs").rglob("*"))
    later = datetime.now(UTC) + timedelta(days=10)  # past staging (P7D)

    report = execute_purge(plan_purge(world.settings, world.config, ledger, now=later), world.settings,
                           world.config, ledger, resolvers.connection, now=later)

    assert report.held and not report.failed
    assert all(p.exists() for p in outbox + working)  # the retry of this run still needs them
    cleanup(run, resolvers, ledger)
    assert not marker.exists()
    execute_purge(plan_purge(world.settings, world.config, ledger, now=later), world.settings, world.config, ledger,
                  resolvers.connection, now=later)
    assert not any(p.exists() for p in outbox)
    # A run with nothing left to do marks nothing (the DAG short-circuits and may skip its cleanup).
    ledger.append("disclosure", agreement="mash-referrals", flow=run.ref.key, logical_date=run.logical_date,
                  recipient="south-yorkshire-police", dedupe_key=run.disclosure_key(run.recipient(
                      "south-yorkshire-police")), payload={"files": []})
    assert check_agreement(run, resolvers, ledger)["pending"] == []
    assert not marker.exists()
