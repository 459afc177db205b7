"""docker-compose.yml checked statically: no Docker engine runs here, so its wiring is read, not run."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from transfers.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_airflow_image_is_the_locked_airflow_version(compose):
    images = {compose["services"][name]["image"] for name in AIRFLOW_SERVICES}
    assert images == {f"apache/airflow:{version('apache-airflow')}-python3.11"}


def test_every_secret_used_is_declared_as_a_git_ignored_file(compose):
    declared = compose["secrets"]
    ignored = (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "secrets/" in ignored
    for name, service in compose["services"].items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"service {name} uses undeclared secret {secret}"
    for secret in declared.values():
        assert Path(secret["file"]).parts[0] == "secrets"


def test_no_secret_value_is_written_in_the_file(compose):
    for name, service in compose["services"].items():
        for key in service.get("environment") or {}:
            words = key.split("__")[-1].split("_")
            if any(w in words for w in ("PASSWORD", "SECRET", "CONN", "TOKEN")) and not key.endswith(
                ("_FILE", "_CMD", "_BACKEND", "_BACKEND_KWARGS")
            ):
                pytest.fail(f"service {name}: {key} holds a value; read it from /run/secrets instead")


def test_every_airflow_component_shares_the_jwt_secret_and_execution_api(compose):
    # Components that each generate their own JWT secret reject each other's task tokens.
    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__API_AUTH__JWT_SECRET_CMD"] == "cat /run/secrets/airflow_jwt_secret"
        assert "airflow_jwt_secret" in compose["services"][name]["secrets"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")


def test_dags_and_config_paths_are_inside_the_mounted_project(compose):
    service = compose["services"]["airflow-scheduler"]
    mount = next(v for v in service["volumes"] if v.startswith("./:"))
    inside = mount.split(":")[1]
    env = service["environment"]
    for key, folder in (("AIRFLOW__CORE__DAGS_FOLDER", "dags"), ("TRANSFERS_CONFIG_DIR", "config"),
                        ("TRANSFERS_KEYS_DIR", "keys")):
        assert env[key] == f"{inside}/{folder}"
        assert (PROJECT_ROOT / folder).is_dir()
