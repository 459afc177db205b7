"""A flow's DAG run through Airflow itself (``airflow dags test``), delivering to real sshd."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE, conn_json, read_delivery
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
    }
    for conn_id, conn in world.connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(conn)
    return env


def test_flow_dag_runs_through_airflow_and_gpg_decrypts_the_delivery(world, sshd, gpg_partner, airflow_home):
    env = airflow_env(world, airflow_home)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "mash-referrals.B", LOGICAL_DATE.isoformat()],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    files = world.delivered("inbound/ed-attendances")
    assert [f.name for f in files] == [f"mash-referrals_B_{LOGICAL_DATE}.csv.pgp"]
    frame = read_delivery(gpg_partner, files[0])
    assert "presenting_complaint" not in frame.columns
    assert len(frame) == 30
    ledger = world.settings.open_ledger()
    assert [e.recipient for e in ledger.entries(kind="disclosure")] == ["rotherham-childrens-services"]
    # Secrets never reach the task logs.
    logs = "\n".join(p.read_text(errors="replace") for p in airflow_home.rglob("*.log"))
    assert world.secrets["mash_pseudonym_key"] not in logs + result.stdout + result.stderr
    assert world.staging_key not in logs + result.stdout + result.stderr


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
