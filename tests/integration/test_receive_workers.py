"""The recipient's side with several workers: received on one, destroyed and certified on another.

The police (``exchange_world``'s mailbox deployment: real sshd, PostgreSQL and gpg) run as a deployment of
several workers (``TRANSFERS_WORKERS=many``) that the deployment check accepts: PostgreSQL ledger and store,
their remote SFTP mailbox as the inbox, a shared volume as work store and an anchor outside the homes. The
receive DAG's poke (``_receive`` in ``dags/isp_transfers.py``, loaded from the file as the scheduler would)
runs on the worker whose home is ``worker-1``; the retention DAG's purge and daily exchange run on
``worker-2``, which never saw the delivery: the rows go on the controller's date, the signed certificate goes
to the mailbox, and the controller (the sender) collects and records it. Only the call outside a running
task is stood in for (the poke gets its logical date as an argument, as the sensor's template gives it).
"""

from __future__ import annotations

import importlib.util
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import ModuleType

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE, conn_json, sftp_conn, throwaway_pg_database
from tests.integration.exchange_world import (
    FLOW,
    RECIPIENT,
    SENDER,
    Exchange,
    mailbox_exchange,
    police_keys,
    police_sshd,
)
from transfers.certificate import certificate_name
from transfers.ledger.records import CertificateIssued, Destroyed, DestructionCertified, Received
from transfers.receipt import RECEIPTS_DIR, base_name, delivery_id
from transfers.settings import PROJECT_ROOT, Settings

__all__ = ["mailbox_exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

ID = delivery_id("mash-referrals", "A", LOGICAL_DATE.isoformat(), RECIPIENT)
DESTROY_BY = LOGICAL_DATE + timedelta(days=30)
DUE = datetime.combine(DESTROY_BY, time.min, UTC)
TABLE = "received_mash_referrals_a"


@pytest.fixture
def ledger_url():
    with throwaway_pg_database("syp_ledger") as (url, _name):
        yield url


@pytest.fixture
def police(mailbox_exchange: Exchange, ledger_url: str, tmp_path: Path, monkeypatch) -> Exchange:
    """Flow A under a P30D controller period, sent to the police's mailbox; the police's environment set for
    several workers."""
    ex = mailbox_exchange
    agreement = ex.sender.settings.config_dir / "agreements" / "mash-referrals.yaml"
    text = agreement.read_text()
    assert text.count("period: P6Y") == 1
    agreement.write_text(text.replace("period: P6Y", "period: P30D"))  # the police's one-year key still verifies
    ex.sender.reload()
    settings = ex.police.settings
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TRANSFERS_CONFIG_DIR": str(settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(settings.keys),
        "TRANSFERS_PARTY": RECIPIENT,
        "TRANSFERS_WORKERS": "many",
        "TRANSFERS_LEDGER_URL": ledger_url,
        "TRANSFERS_STORE_URL": ex.store_url,
        "TRANSFERS_MAILBOX": "syp_mailbox",
        "TRANSFERS_WORK_STORE": str(tmp_path / "shared-volume"),
        "TRANSFERS_LEDGER_ANCHOR_URL": str(tmp_path / "anchor-volume" / "ledger.head"),
        "AIRFLOW_CONN_SYP_MAILBOX": conn_json(sftp_conn("syp_mailbox", ex.police_sshd)),
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": ex.keys.signing_secret,
        "AIRFLOW_VAR_TRANSFERS_DECRYPTION_KEY": ex.keys.decryption_secret,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("TRANSFERS_INBOX_DIR", "AIRFLOW__CORE__EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    return ex


def dag_file() -> ModuleType:
    """``dags/isp_transfers.py`` loaded as the scheduler and each worker load it (the deployment check included)."""
    spec = importlib.util.spec_from_file_location(f"isp_transfers_{uuid.uuid4().hex[:6]}",
                                                  PROJECT_ROOT / "dags" / "isp_transfers.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_worker(monkeypatch, home: Path) -> Settings:
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    return Settings()


def rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE):
                return 0
            return int(conn.execute(sa.text(f'SELECT count(*) FROM "{TABLE}"')).scalar_one())
    finally:
        engine.dispose()


def files(home: Path) -> list[Path]:
    return sorted(p for p in home.rglob("*") if p.is_file()) if home.exists() else []


def test_received_on_one_worker_destroyed_and_certified_on_another(police: Exchange, monkeypatch, tmp_path):
    from transfers.destruction import collect_certificates
    from transfers.exchange_daily import run_daily_exchange
    from transfers.pipeline import Resolvers
    from transfers.retention import execute_purge, plan_purge

    police.send()
    worker_1, worker_2 = tmp_path / "worker-1", tmp_path / "worker-2"
    on_worker(monkeypatch, worker_1)
    dags = dag_file()  # the deployment check passes: this is a deployment fit for several workers
    assert f"dag_receive_{FLOW.replace('-', '_').replace('.', '__')}" in vars(dags)

    # The receive poke on worker 1: fetched from the mailbox, loaded into the shared store, receipt returned.
    start = datetime.combine(LOGICAL_DATE, time(12), tzinfo=UTC)
    poke = dags._receive(FLOW, start)
    assert poke.is_done and poke.xcom_value["status"] == "accepted"
    loaded = poke.xcom_value["rows"]
    assert loaded > 0 and rows(police.store_url) == loaded
    # Nothing of the delivery stays on worker 1: the mailbox cache went with the receive, the store is elsewhere.
    assert not [p for p in files(worker_1) if "inbox-cache" in p.parts or p.name.endswith((".db", ".pgp"))]
    assert police.collect()["status"] == "acknowledged"

    # The retention DAG's tasks on worker 2, which never saw the delivery: the purge, then the daily exchange.
    settings = on_worker(monkeypatch, worker_2)
    config = police.police.config
    with settings.open_ledger() as ledger:
        [received] = ledger.records(Received)
        assert received.delivery_id == ID and received.rows == loaded
        early = plan_purge(settings, config, ledger, now=DUE - timedelta(days=1))
        assert [i.place for i in early if i.place == "received"] == []  # not due before the controller's date
        due = plan_purge(settings, config, ledger, now=DUE)
        assert [(i.place, i.path) for i in due if i.place == "received"] == [("received", ID)]
        report = execute_purge(due, settings, config, ledger, dags._connection, now=DUE)
        assert report.failed == []
        daily = run_daily_exchange(settings, config, ledger, Resolvers(dags._connection, dags._secret),
                                   now=DUE + timedelta(hours=5))
        assert (daily.certificates_issued, daily.problems) == (1, [])
        [destroyed] = ledger.records(Destroyed)
        [issued] = ledger.records(CertificateIssued)
    assert rows(police.store_url) == 0
    assert (destroyed.delivery_id, destroyed.rows, destroyed.complete) == (ID, loaded, True)
    assert (issued.delivery_id, issued.controller, issued.sent_to, issued.rows) == (ID, SENDER, "mailbox", loaded)
    assert (police.inbox / RECEIPTS_DIR / certificate_name(base_name("mash-referrals", "A", LOGICAL_DATE.isoformat()))
            ).is_file()  # on the mailbox, where the controller collects it
    assert not (worker_2 / "received.db").exists() and not (worker_1 / "received.db").exists()

    # The controller collects the certificate from the police's mailbox and records it.
    sender = police.sender
    with sender.settings.open_ledger() as ledger:
        [result] = collect_certificates(sender.settings, sender.config, ledger, sender.resolvers().connection,
                                        now=DUE + timedelta(days=1))
    assert result.status == "certified", result.detail
    [certified] = police.sender_records(DestructionCertified)
    assert (certified.delivery_id, certified.rows, certified.certificate_sha256) == \
        (ID, loaded, issued.certificate_sha256)


def test_the_dag_file_refuses_the_same_deployment_with_a_worker_s_own_store_and_inbox(police: Exchange, monkeypatch,
                                                                                        tmp_path):
    from transfers.errors import ConfigError

    on_worker(monkeypatch, tmp_path / "worker-1")
    monkeypatch.delenv("TRANSFERS_STORE_URL")
    monkeypatch.delenv("TRANSFERS_MAILBOX")

    with pytest.raises(ConfigError) as refused:
        dag_file()

    assert [p.split(":", 1)[0] for p in refused.value.problems] == ["TRANSFERS_STORE_URL", "TRANSFERS_INBOX_DIR"]
    assert "mash-referrals.A" in refused.value.problems[1]


def test_a_rejected_delivery_s_quarantine_is_published_to_the_s3_work_store_and_purged_there_by_another_worker(
        mailbox_exchange: Exchange, ledger_url: str, tmp_path):
    """moto's S3 server stands for the work store (no real S3 can run here)."""
    import hashlib
    import json

    from tests.support.s3 import moto_s3, s3_bucket
    from transfers.errors import DeliveryRejected
    from transfers.retention import execute_purge, plan_purge

    ex = mailbox_exchange
    ex.send()
    part = sorted(ex.inbox.glob(f"mash-referrals_A_{LOGICAL_DATE}*.pgp"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # changed on the way: the police reject and quarantine it
    part.write_bytes(bytes(data))
    with moto_s3("work_s3") as conn, s3_bucket(conn, "isp-work", versioned=True) as (client, bucket):
        def worker(home: Path) -> Settings:
            base = ex.police.settings
            return Settings(home=home, config_dir=base.config_dir, keys_dir=base.keys, party=RECIPIENT,
                            store_url=ex.store_url, mailbox="syp_mailbox", ledger_url=ledger_url,
                            work_store=f"s3://{bucket}/work", work_store_conn_id="work_s3")

        ex.police.settings = worker(tmp_path / "worker-1")
        ex.police.connections["work_s3"] = conn
        with pytest.raises(DeliveryRejected):
            ex.police.receive()

        # Published under the same relative path, still encrypted, and gone from worker 1.
        folder = f"work/quarantine/mash-referrals/A/{LOGICAL_DATE}/{SENDER}"
        stored = sorted(item["Key"] for item in client.list_objects_v2(Bucket=bucket, Prefix=folder + "/")["Contents"])
        manifest = f"mash-referrals_A_{LOGICAL_DATE}.manifest.json"
        assert stored == sorted(f"{folder}/{name}" for name in (part.name, manifest, manifest + ".asc", "reason.json"))
        assert client.get_object(Bucket=bucket, Key=f"{folder}/{part.name}")["Body"].read() == bytes(data)
        reason = json.loads(client.get_object(Bucket=bucket, Key=f"{folder}/reason.json")["Body"].read())
        assert reason["delivery_id"] == ID and "SHA-256" in reason["reason"]
        assert not (tmp_path / "worker-1" / "quarantine" / "mash-referrals" / "A" / LOGICAL_DATE.isoformat()
                    / SENDER).exists()

        # Worker 2, which never saw it: kept before its date, destroyed on it, with evidence.
        settings, config = worker(tmp_path / "worker-2"), ex.police.config
        quarantined = datetime.fromisoformat(reason["quarantined_at"])
        if reason.get("destroy_by"):  # the signed manifest's date: the controller's rule
            due = datetime.combine(date.fromisoformat(reason["destroy_by"]), time.min, UTC)
        else:  # no date from the manifest: the flow's staging period (P7D) after quarantine
            due = quarantined + timedelta(days=7)
        with settings.open_ledger() as ledger:
            early = plan_purge(settings, config, ledger, now=due - timedelta(days=1), connection=lambda _id: conn)
            assert [i for i in early if i.place == "quarantine"] == []
            items = plan_purge(settings, config, ledger, now=due + timedelta(hours=1), connection=lambda _id: conn)
            [item] = [i for i in items if i.place == "quarantine"]
            assert (item.store, item.path) == ("s3", f"s3://{bucket}/{folder}")
            report = execute_purge(items, settings, config, ledger, lambda _id: conn, now=due + timedelta(hours=1))
            assert report.failed == []
            [record] = ledger.records(Destroyed)
        assert client.list_object_versions(Bucket=bucket, Prefix=folder + "/").get("Versions", []) == []
        assert (record.place, record.delivery_id, record.path) == ("quarantine", ID, f"s3://{bucket}/{folder}")
        evidence = {f.remote_path: f.sha256 for f in record.files}
        assert evidence[part.name] == hashlib.sha256(bytes(data)).hexdigest() and "reason.json" in evidence
        assert "every version" in record.verified


def test_a_second_quarantine_of_the_same_delivery_never_overwrites_the_store_s_evidence_and_a_refusing_store_keeps_the_copy(
        tmp_path):
    """Two workers quarantine the same delivery (each into its own home's ``<sender>`` folder): the store keeps
    both, the second as ``<sender>.2``. moto's S3 server stands for the work store."""
    from tests.support.s3 import moto_s3, s3_bucket
    from transfers.errors import WorkStoreRefused
    from transfers.receive.quarantine import quarantine
    from transfers.workstore.quarantine import publish_quarantine

    def rejected_on(home: Path, settings: Settings, body: bytes) -> Path:
        inbox = home / "inbox-copy"
        inbox.mkdir(parents=True)
        (inbox / "x.csv.pgp").write_bytes(body)
        return quarantine([inbox / "x.csv.pgp"], settings.layout.quarantine_dir("mash-referrals", "A", LOGICAL_DATE,
                                                                                 SENDER),
                          reason="x.csv.pgp: SHA-256 differs from the manifest's", delivery_id=ID, manifest_sha256=None)

    with moto_s3("work_s3") as conn, s3_bucket(conn, "isp-work", versioned=False) as (client, bucket):
        published = []
        for number, home in enumerate((tmp_path / "worker-1", tmp_path / "worker-2"), 1):
            settings = Settings(home=home, config_dir=PROJECT_ROOT / "config", work_store=f"s3://{bucket}/work",
                                work_store_conn_id="work_s3")
            folder = rejected_on(home, settings, f"copy {number}".encode())
            published.append(publish_quarantine(settings, folder, lambda _id: conn))
            assert not folder.exists()
        base = f"s3://{bucket}/work/quarantine/mash-referrals/A/{LOGICAL_DATE}/{SENDER}"
        assert published == [base, base + ".2"]
        first = client.get_object(Bucket=bucket, Key=base.split("/", 3)[3] + "/x.csv.pgp")["Body"].read()
        assert first == b"copy 1"

        refusing = Settings(home=tmp_path / "worker-3", config_dir=PROJECT_ROOT / "config",
                            work_store="s3://no-such-bucket/work", work_store_conn_id="work_s3")
        folder = rejected_on(tmp_path / "worker-3", refusing, b"copy 3")
        with pytest.raises(WorkStoreRefused, match="no-such-bucket"):
            publish_quarantine(refusing, folder, lambda _id: conn)
        assert (folder / "x.csv.pgp").read_bytes() == b"copy 3" and (folder / "reason.json").is_file()
