"""A flow's DAG run through Airflow itself (``airflow dags test``), delivering to real sshd."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE, conn_json, read_delivery
from tests.support.receipt_standin import StandInRecipient
from transfers.settings import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow")
    env = {"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**_base_env(), **env},
                   check=True, capture_output=True)
    return home


def _base_env() -> dict:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "TRANSFERS_"))}


def airflow_env(world, airflow_home) -> dict:
    env = {
        **_base_env(),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
        "TRANSFERS_CONFIG_DIR": str(world.settings.config_dir),
        "TRANSFERS_KEYS_DIR": str(world.settings.keys),
        "TRANSFERS_HOME": str(world.settings.home),
        "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": world.staging_key,
        "AIRFLOW_VAR_MASH_PSEUDONYM_KEY": world.secrets["mash_pseudonym_key"],
        "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": world.secrets["transfers_signing_key"],
        "TRANSFERS_POKE_SECONDS": "2",  # the receipt sensor looks again every 2 s, not every 5 min
    }
    for conn_id, conn in world.connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(conn)
    return env


def _Recipient(world, *, accept: bool = True) -> StandInRecipient:  # noqa: N802  # reads as the class it makes
    """Plays flow B's recipient while the DAG runs: once the manifest lands, returns a signed receipt for it."""
    return StandInRecipient(world, "B", "inbound/ed-attendances", accept=accept)


def _dags_test_b(world, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``airflow dags test`` of flow B's send DAG, with a stand-in recipient signing the receipt; must succeed."""
    recipient = _Recipient(world)
    recipient.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", "mash-referrals.B", LOGICAL_DATE.isoformat()],
            env=env, capture_output=True, text=True, timeout=600,
        )
    finally:
        recipient.stop.set()
        recipient.join()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_flow_dag_runs_through_airflow_and_gpg_decrypts_the_delivery(world, sshd, gpg_partner, airflow_home):
    env = airflow_env(world, airflow_home)
    result = _dags_test_b(world, env)

    files = world.delivered("inbound/ed-attendances")
    assert [f.name for f in files] == [f"mash-referrals_B_{LOGICAL_DATE}.csv.pgp"]
    frame = read_delivery(gpg_partner, files[0])
    assert "presenting_complaint" not in frame.columns
    assert len(frame) == 30
    ledger = world.settings.open_ledger()
    assert [e.recipient for e in ledger.entries(kind="disclosure")] == ["rotherham-childrens-services"]
    # The receipt sensor waited for the recipient's signed receipt and recorded it.
    assert [e.payload["status"] for e in ledger.entries(kind="acknowledgement")] == ["acknowledged"]
    # Secrets never reach the task logs.
    logs = "\n".join(p.read_text(errors="replace") for p in airflow_home.rglob("*.log"))
    assert world.secrets["mash_pseudonym_key"] not in logs + result.stdout + result.stderr
    assert world.staging_key not in logs + result.stdout + result.stderr


def _task_instances(airflow_home, task_id: str) -> list[tuple[int, str, str | None]]:
    """(map_index, state, rendered_map_index) of each instance of ``task_id`` in flow B's run, as Airflow recorded it."""
    import sqlite3

    with sqlite3.connect(airflow_home / "airflow.db") as db:
        return db.execute("SELECT map_index, state, rendered_map_index FROM task_instance WHERE dag_id = ? "
                          "AND task_id = ? ORDER BY map_index", ("mash-referrals.B", task_id)).fetchall()


def test_each_part_is_encrypted_by_its_own_mapped_task_and_one_seal_writes_the_manifest(world, sshd, gpg_partner,
                                                                                       airflow_home):
    import json

    partner = "rotherham-childrens-services"
    env = {**airflow_env(world, airflow_home), "TRANSFERS_DELIVERY_MAX_ROWS": "10", "TRANSFERS_COMPRESSION": "zlib"}
    result = _dags_test_b(world, env)

    names = [f"mash-referrals_B_{LOGICAL_DATE}_part{i:03d}of003.csv.pgp" for i in (1, 2, 3)]
    # One mapped task instance per part, each named in the grid by its file; one plan and one seal.
    assert _task_instances(airflow_home, f"encrypt_{partner}_part") == [(i, "success", n) for i, n in enumerate(names)]
    assert _task_instances(airflow_home, f"encrypt_{partner}") == [(-1, "success", None)]
    assert _task_instances(airflow_home, f"seal_{partner}") == [(-1, "success", None)]
    files = world.delivered("inbound/ed-attendances")
    assert [f.name for f in files] == names
    frames = [read_delivery(gpg_partner, f) for f in files]
    assert [len(f) for f in frames] == [10, 10, 10]
    [manifest] = (world.remote_root / "inbound" / "ed-attendances").glob("*.manifest.json")
    listed = json.loads(manifest.read_text())["files"]
    assert [(f["name"], f["rows"], f["size"]) for f in listed] == [(p.name, 10, p.stat().st_size) for p in files]
    # The signing key and the staging key reach each part's task from the secrets backend: never a log.
    logs = "\n".join(p.read_text(errors="replace") for p in airflow_home.rglob("*.log"))
    secret_line = world.secrets["transfers_signing_key"].splitlines()[3]  # a line of the armoured key
    for secret in (secret_line, world.staging_key, world.secrets["mash_pseudonym_key"]):
        assert secret not in logs + result.stdout + result.stderr


def test_an_outbox_sealed_by_an_earlier_attempt_is_planned_as_nothing_and_delivered_as_it_is(world, sshd, airflow_home):
    """An attempt that sealed the outbox and failed to deliver: the next run's part task is skipped, the seal reuses."""
    from transfers.steps.check_agreement import check_agreement
    from transfers.steps.encrypt import encrypt
    from transfers.steps.extract import extract
    from transfers.steps.prepare import prepare
    from transfers.steps.quality import quality

    partner = "rotherham-childrens-services"
    run, resolvers = world.run("mash-referrals.B"), world.resolvers()
    with world.settings.open_ledger() as ledger:
        for step in (check_agreement, extract, quality, prepare):
            step(run, resolvers, ledger)
        encrypt(run, resolvers, ledger, run.recipient(partner))
    outbox = run.outbox_dir(run.recipient(partner))
    sealed = {p.name: p.read_bytes() for p in outbox.iterdir() if p.is_file()}

    _dags_test_b(world, airflow_env(world, airflow_home))

    assert _task_instances(airflow_home, f"encrypt_{partner}_part") == [(-1, "skipped", None)]
    assert _task_instances(airflow_home, f"seal_{partner}") == [(-1, "success", None)]
    files = world.delivered("inbound/ed-attendances")
    assert [(f.name, f.read_bytes()) for f in files] == [(n, b) for n, b in sealed.items() if n.endswith(".pgp")]


def test_a_rejected_receipt_fails_the_dag_run_with_the_recipient_s_reason(world, sshd, airflow_home):
    recipient = _Recipient(world, accept=False)
    recipient.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", "mash-referrals.B", LOGICAL_DATE.isoformat()],
            env=airflow_env(world, airflow_home), capture_output=True, text=True, timeout=600,
        )
    finally:
        recipient.stop.set()
        recipient.join()

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "rows do not match the manifest" in output
    ledger = world.settings.open_ledger()
    assert [e.payload["status"] for e in ledger.entries(kind="acknowledgement")] == ["rejected"]


def test_a_lapsed_agreement_stops_the_dag_before_extract(world, sshd, airflow_home):
    import yaml

    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["in_force"], data["review_by"] = "2025-01-01", "2025-12-31"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "mash-referrals.B", LOGICAL_DATE.isoformat()],
        env=airflow_env(world, airflow_home), capture_output=True, text=True, timeout=600,
    )

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "lapsed on 2025-12-31" in output
    assert world.delivered("inbound/ed-attendances") == []


def test_the_retention_dag_purges_through_airflow_with_evidence(world, sshd, airflow_home):
    from transfers.pipeline import run_flow

    run_flow(world.run("mash-referrals.B"), world.resolvers())
    reports = world.settings.home / "reports" / "mash-referrals" / "B"
    scorecard = next(reports.glob("quality_B_*.html"))
    long_ago = (datetime.now(UTC) - timedelta(days=120)).timestamp()
    os.utime(scorecard, (long_ago, long_ago))  # older than the flow's reports period (P90D)
    delivered = world.delivered("inbound/ed-attendances")

    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "isp-retention", LOGICAL_DATE.isoformat()],
        env=airflow_env(world, airflow_home), capture_output=True, text=True, timeout=600,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert not scorecard.exists()
    assert all(p.exists() for p in delivered)  # the partner's copy is within its period
    purges = [e.payload for e in world.settings.open_ledger().entries(kind="purge")]
    assert [p["path"] for p in purges] == [str(scorecard)]


def test_quality_and_prepare_run_as_a_mapped_task_per_range_and_the_seal_catches_a_key_repeated_across_ranges(
        world, sshd, gpg_partner, airflow_home):
    """Flow B's 30 rows staged 10 a part, 10 rows a task: three instances each of quality_part and prepare_part."""
    import yaml

    from tests.integration.test_quality_pipeline import edit_flow_b, export_b
    from transfers.devkit import synthetic

    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    next(f for f in data["flows"] if f["id"] == "B")["source"]["batch_rows"] = 10
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    edit_flow_b(world, on_failure={"reliability": "quarantine"})
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[25, "attendance_id"] = frame.at[2, "attendance_id"]  # the first range and the third
    export_b(world, LOGICAL_DATE, frame)
    env = {**airflow_env(world, airflow_home), "TRANSFERS_PART_ROWS": "10"}

    result = _dags_test_b(world, env)

    for step in ("quality", "prepare"):
        assert _task_instances(airflow_home, f"{step}_part") == [(i, "success", f"part-{i:05d}") for i in range(3)]
        assert _task_instances(airflow_home, step) == [(-1, "success", None)]
        assert _task_instances(airflow_home, f"{step}_seal") == [(-1, "success", None)]
    [entry] = world.settings.open_ledger().entries(kind="quality", flow="mash-referrals.B")
    assert entry.payload["rows"] == 30 and entry.payload["quarantined"] == 1
    assert entry.payload["dimensions"]["reliability"] == {**entry.payload["dimensions"]["reliability"],
                                                         "failing_rows": 2, "outcome": "quarantine"}
    reports = world.settings.home / "reports"
    assert len(list(reports.rglob(f"quality_B_{LOGICAL_DATE}.html"))) == 1
    [delivered] = world.delivered("inbound/ed-attendances")
    received = read_delivery(gpg_partner, delivered)
    assert sorted(received["attendance_id"]) == sorted(frame["attendance_id"].drop([2, 25]))  # both copies held back
    [privacy] = world.settings.open_ledger().entries(kind="privacy", flow="mash-referrals.B")
    assert (privacy.payload["rows_screened"], privacy.payload["rows_sent"]) == (28, 28)
    logs = "\n".join(p.read_text(errors="replace") for p in airflow_home.rglob("*.log"))
    assert str(frame.at[2, "attendance_id"]) not in logs + result.stdout + result.stderr  # keys never in a log
