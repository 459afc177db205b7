"""docker-compose.yml, Dockerfile and deploy/ checked statically: no Docker engine runs here, so their wiring is read, not run.

The Compose specification's own JSON schema is the one check-jsonschema ships (vendored there from
compose-spec/compose-spec and kept current). The image's install step itself is run into a clean
venv by tests/integration/test_image_install.py; deploy/postgres-init.sql runs against a real
PostgreSQL there too.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from cryptography.fernet import Fernet

from tests.support.dockerfile import instructions
from transfers.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
ONE_MACHINE = PROJECT_ROOT / "docker-compose.one-machine.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
DOCKERIGNORE = PROJECT_ROOT / ".dockerignore"
MAKE_SECRETS = PROJECT_ROOT / "deploy" / "make-secrets"
OBJECT_STORE_INIT = PROJECT_ROOT / "deploy" / "object-store-init"
POSTGRES_INIT = PROJECT_ROOT / "deploy" / "postgres-init.sql"
IMAGE = "isp-transfers:local"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
#: The Airflow services that keep TRANSFERS_HOME on the shared state volume; the workers keep their own.
STATE_SERVICES = tuple(s for s in AIRFLOW_SERVICES if s != "airflow-worker")
LONG_RUNNING = (
    "postgres",
    "redis",
    "object-store",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
#: Every value Airflow reads from a secret file, and the file; each must be the same for every component.
SHARED_SECRETS = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": "airflow_db_url",
    "AIRFLOW__CORE__FERNET_KEY_CMD": "airflow_fernet_key",
    "AIRFLOW__API_AUTH__JWT_SECRET_CMD": "airflow_jwt_secret",
    "AIRFLOW__API__SECRET_KEY_CMD": "airflow_api_secret_key",
    "AIRFLOW__CELERY__BROKER_URL_CMD": "airflow_broker_url",
    "AIRFLOW__CELERY__RESULT_BACKEND_CMD": "airflow_result_backend",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose_schema() -> jsonschema.protocols.Validator:
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def _image_services(compose: dict) -> dict[str, dict]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == IMAGE}


def _code(path: Path) -> str:
    """The file without its comment lines (which show placeholders such as ``<password>`` and name steps)."""
    return "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def test_the_file_is_valid_against_the_compose_specification(compose, compose_schema):
    problems = [f"{e.json_path}: {e.message[:200]}" for e in compose_schema.iter_errors(compose)]

    assert problems == []


def test_the_schema_check_refuses_a_misspelt_key(compose, compose_schema):
    # So the check above can fail: a key Compose does not know is an error, not ignored.
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["airflow-scheduler"]["healthchek"] = broken["services"]["airflow-scheduler"].pop("healthcheck")

    assert list(compose_schema.iter_errors(broken))


def test_every_depends_on_names_a_service_of_the_file(compose):
    for name, service in compose["services"].items():
        for target in service.get("depends_on") or {}:
            assert target in compose["services"], f"service {name} depends on {target}, which is not a service"
            assert target != name


def test_every_service_of_the_image_waits_for_init_and_a_healthy_database(compose):
    services = _image_services(compose)
    assert set(AIRFLOW_SERVICES) <= set(services)
    for name, service in services.items():
        if name == "object-store-init":  # it needs the object store alone (below)
            continue
        needs = service["depends_on"]
        assert needs["postgres"] == {"condition": "service_healthy"}, name
        if name != "airflow-init":
            assert needs["airflow-init"] == {"condition": "service_completed_successfully"}, name
            assert needs["redis"] == {"condition": "service_healthy"}, name
            assert needs["object-store"] == {"condition": "service_healthy"}, name
    init = services["airflow-init"]
    # `transfers ledger verify` reads the anchor: its bucket is made (and versioned) before.
    assert init["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "object-store-init": {"condition": "service_completed_successfully"},
    }
    assert init["restart"] == "no"
    buckets = services["object-store-init"]
    assert buckets["depends_on"] == {"object-store": {"condition": "service_healthy"}}
    assert buckets["restart"] == "no"


def test_the_image_is_built_here_and_no_container_installs_at_start(compose):
    text = COMPOSE.read_text()
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in text
    for name, service in _image_services(compose).items():
        assert service["build"] == ".", name
        assert service["user"] == ("0:0" if name == "airflow-init" else "50000:0"), name


def test_every_long_running_service_has_a_healthcheck_that_asks_it(compose):
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name]["healthcheck"]["test"], name
    assert "/api/v2/version" in " ".join(services["airflow-apiserver"]["healthcheck"]["test"])
    assert "8080:8080" in services["airflow-apiserver"]["ports"][0]
    assert "http://127.0.0.1:8974/health" in " ".join(services["airflow-scheduler"]["healthcheck"]["test"])
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert "--job-type DagProcessorJob" in " ".join(services["airflow-dag-processor"]["healthcheck"]["test"])
    assert "--job-type TriggererJob" in " ".join(services["airflow-triggerer"]["healthcheck"]["test"])
    assert "inspect ping" in " ".join(services["airflow-worker"]["healthcheck"]["test"])
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    assert "http://127.0.0.1:7070/health" in services["object-store"]["healthcheck"]["test"]
    # Over TCP: the server listens on its socket alone while the init script makes the roles.
    assert services["postgres"]["healthcheck"]["test"][:4] == ["CMD", "pg_isready", "-h", "127.0.0.1"]


def test_every_airflow_component_shares_the_logs_and_state_volumes(compose):
    declared = compose["volumes"]
    for name in STATE_SERVICES:
        mounts = dict(v.split(":")[:2][::-1] for v in compose["services"][name]["volumes"])
        assert mounts["/opt/airflow/logs"] == "airflow-logs", name
        assert mounts["/var/lib/isp-transfers"] == "transfers-state", name
        assert compose["services"][name]["environment"]["TRANSFERS_HOME"] == "/var/lib/isp-transfers"
    assert {"airflow-logs", "transfers-state", "postgres-data"} <= set(declared)


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
        for key, value in (service.get("environment") or {}).items():
            words = key.split("__")[-1].split("_")
            if any(w in words for w in ("PASSWORD", "SECRET", "CONN", "TOKEN", "KEY")) and not key.endswith(
                ("_FILE", "_CMD", "_BACKEND", "_BACKEND_KWARGS")
            ):
                pytest.fail(f"service {name}: {key} holds a value; read it from /run/secrets instead")
            if key.endswith("_FILE") or key.endswith("_CMD"):
                assert "/run/secrets/" in str(value), f"service {name}: {key} reads {value!r}, not a secret file"
    # Nor anywhere else: no URL with a password, no Fernet key, no literal default password.
    text = _code(COMPOSE)
    assert not re.search(r"://[^/\s:@]+:[^@\s]+@", text)
    assert not re.search(r"[A-Za-z0-9_-]{43}=", text)
    assert not re.search(r"(?im)^\s*[\w.-]*password(?!_file)\w*:[ \t]*[^\s]", text)


def test_every_airflow_component_reads_the_same_secrets(compose):
    # Components that each make their own JWT secret reject each other's task tokens; a Fernet key or
    # session key that differs between them cannot read what another wrote.
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        for key, secret in SHARED_SECRETS.items():
            assert env[key] == f"sed -z 's/\\n*$$//' /run/secrets/{secret}", (name, key)
            assert secret in service["secrets"], (name, secret)
        assert "transfers_ledger_url" in service["secrets"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    assert "airflow_admin_password" in compose["services"]["airflow-init"]["secrets"]
    assert "airflow_admin_password" not in compose["x-airflow"]["secrets"]


def test_a_secret_command_gives_the_value_without_the_newline_echo_leaves(compose, tmp_path):
    secret = tmp_path / "airflow_db_url"
    secret.write_text("postgresql+psycopg2://airflow:pw@postgres/airflow\n\n")
    # What Compose hands Airflow ($$ is its escape for $), run as Airflow's run_command runs it.
    command = compose["x-airflow"]["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD"].replace("$$", "$")
    argv = [str(secret) if a == "/run/secrets/airflow_db_url" else a for a in shlex.split(command)]

    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    assert out == "postgresql+psycopg2://airflow:pw@postgres/airflow"


def test_the_auth_manager_is_fab_and_the_image_installs_it(compose):
    env = compose["x-airflow"]["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("apache-airflow-providers-fab") for d in project["optional-dependencies"]["deploy"])
    syncs = [args for op, args in instructions() if op == "RUN" and "uv sync" in args]
    assert syncs and all("--extra deploy" in args for args in syncs)


def test_the_dockerfile_installs_the_lock_and_nothing_else():
    lines = instructions()
    runs = [args for op, args in lines if op == "RUN"]
    syncs = [args for args in runs if "uv sync" in args]
    assert len(syncs) == 2  # the dependencies' layer, then the project
    for args in syncs:
        assert {"--locked", "--no-dev", "--no-editable"} <= set(args.split())
    assert not [args for args in runs if re.search(r"\bpip3? install\b|uv pip install|uv add", args)]
    bases = [args.split()[0] for op, args in lines if op == "FROM"]
    assert bases == ["python:${PYTHON_VERSION}-slim-bookworm"] * 2
    assert "ARG PYTHON_VERSION=3.11" in DOCKERFILE.read_text()
    # The uv that builds it is the one this lock was written with.
    assert "ghcr.io/astral-sh/uv:0.13.9" in DOCKERFILE.read_text()
    assert ("USER", "50000:0") in lines


def test_the_build_context_is_only_what_the_dockerfile_copies():
    patterns = [p for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*"  # everything out, then only these back in
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = set()
    for op, args in instructions():
        if op == "COPY" and not args.startswith("--from"):
            copied |= {source.rstrip("/") for source in args.split()[:-1]}
    assert allowed == copied
    for never in ("var", "secrets", "keys", "config", "tests", ".venv", ".venv-3.13", ".git"):
        assert not any(a == never or a.startswith(f"{never}/") for a in allowed), never


def test_config_keys_and_suites_are_mounted_read_only_where_settings_look(compose):
    service = compose["services"]["airflow-scheduler"]
    env = service["environment"]
    mounts = {v.split(":")[1]: v for v in service["volumes"]}
    for key, folder in (("TRANSFERS_CONFIG_DIR", "config"), ("TRANSFERS_KEYS_DIR", "keys"), (None, "expectations")):
        inside = f"/opt/isp-transfers/{folder}"
        assert mounts[inside] == f"./{folder}:{inside}:ro"
        assert key is None or env[key] == inside
        assert (PROJECT_ROOT / folder).is_dir()
    # The DAG loader is in the image, at the folder Airflow reads.
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/isp-transfers/dags"
    assert ("COPY", "dags/ /opt/isp-transfers/dags/") in instructions()


def test_postgres_makes_the_ledger_its_own_database_and_role(compose):
    postgres = compose["services"]["postgres"]
    assert "./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/10-roles.sql:ro" in postgres["volumes"]
    assert set(postgres["secrets"]) == {"postgres_password", "airflow_db_password", "transfers_ledger_password"}
    assert postgres["environment"]["POSTGRES_USER"] == "postgres"  # neither Airflow's role nor the ledger's
    sql = POSTGRES_INIT.read_text()
    assert "\\set ledger_db transfers_ledger" in sql and "\\set ledger_role transfers_ledger" in sql
    assert 'CREATE DATABASE :"ledger_db" OWNER :"ledger_role";' in sql
    assert 'REVOKE ALL ON DATABASE :"ledger_db" FROM PUBLIC;' in sql
    assert "SUPERUSER" not in sql.upper().replace("A SUPERUSER", "").replace("ITS SUPERUSER", "")


def test_make_secrets_writes_matching_passwords_urls_and_a_fernet_key(tmp_path):
    folder = tmp_path / "secrets"

    made = subprocess.run([sys.executable, str(MAKE_SECRETS), str(folder)], capture_output=True, text=True)

    assert made.returncode == 1  # connections.json and variables.json are the deployment's to write
    assert "missing" in made.stderr and "connections.json" in made.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    read = {p.name: p.read_text() for p in folder.iterdir()}
    compose = yaml.safe_load(COMPOSE.read_text())
    generated = {n for n, s in compose["secrets"].items()} - {"connections.json", "variables.json"}
    assert set(read) == generated
    for name, value in read.items():
        assert value and value == value.strip(), name  # one line, no newline
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644  # Compose mounts it as it is
        assert value not in made.stdout + made.stderr
    for url_name, password_name, role in (
        ("airflow_db_url", "airflow_db_password", "airflow"),
        ("transfers_ledger_url", "transfers_ledger_password", "transfers_ledger"),
    ):
        url = urlsplit(read[url_name])
        assert (url.scheme, url.username, url.password, url.hostname, url.path) == (
            "postgresql+psycopg2",
            role,
            read[password_name],
            "postgres",
            f"/{role}",
        )
    Fernet(read["airflow_fernet_key"].encode())  # a valid key, or this raises
    assert len({read[n] for n in read if "password" in n}) == 5
    # The broker's URL carries Redis's password; the result backend is Airflow's database, as its URL says.
    broker = urlsplit(read["airflow_broker_url"])
    assert (broker.scheme, broker.username, broker.password, broker.hostname, broker.port, broker.path) == (
        "redis",
        "",
        read["redis_password"],
        "redis",
        6379,
        "/0",
    )
    assert read["airflow_result_backend"] == "db+" + read["airflow_db_url"]
    # boto3's credentials file is the object store's own key pair.
    credentials = configparser.ConfigParser()
    credentials.read_string(read["object_store_credentials"])
    assert dict(credentials["default"]) == {
        "aws_access_key_id": read["object_store_access_key"],
        "aws_secret_access_key": read["object_store_secret_key"],
    }
    assert read["object_store_access_key"] != read["object_store_secret_key"]

    again = subprocess.run([sys.executable, str(MAKE_SECRETS), str(folder)], capture_output=True, text=True)
    assert {p.name: p.read_text() for p in folder.iterdir()} == read  # kept, never replaced
    assert again.stdout.count("kept") == len(generated)


def test_airflow_init_is_a_valid_script_that_stops_at_the_first_failure():
    script = PROJECT_ROOT / "deploy" / "airflow-init.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = _code(script)
    assert "set -euo pipefail" in text
    order = (
        "airflow db migrate",
        "airflow users create",
        "airflow roles create",
        "transfers ledger verify",
        "transfers validate",
    )
    steps = [s for s in order if s in text]
    assert steps == list(order)
    assert [text.index(s) for s in steps] == sorted(text.index(s) for s in steps)


# --- several workers: CeleryExecutor, Redis, the object store (issue 16) ---------------------------


def _s3_bucket(url: str) -> str:
    assert url.startswith("s3://"), url
    return url[len("s3://") :].split("/", 1)[0]


def test_every_airflow_service_runs_the_celery_executor_with_the_multi_worker_settings(compose):
    services = _image_services(compose)
    object_store = compose["services"]["object-store"]
    for name, service in services.items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["TRANSFERS_WORKERS"] == "many", name
        assert env["TRANSFERS_WORK_STORE"].startswith("s3://") and env["TRANSFERS_WORK_STORE"].count("/") >= 3, name
        assert env["TRANSFERS_LEDGER_ANCHOR_URL"].startswith("s3://"), name
        # The AWS chain, not a connection id: the endpoint is the compose service, the keys a secret file.
        assert "TRANSFERS_WORK_STORE_CONN_ID" not in env, name
        endpoint = urlsplit(env["AWS_ENDPOINT_URL_S3"])
        assert endpoint.hostname == "object-store" and f":{endpoint.port}" in " ".join(object_store["command"]), name
        assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/object_store_credentials", name
        assert "object_store_credentials" in service["secrets"], name
        assert env["AWS_DEFAULT_REGION"], name
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env), name
    env = compose["x-airflow"]["environment"]
    # The anchor's bucket is versioned and the work store's must not be: never one bucket for both.
    assert _s3_bucket(env["TRANSFERS_WORK_STORE"]) != _s3_bucket(env["TRANSFERS_LEDGER_ANCHOR_URL"])
    assert not env["TRANSFERS_LEDGER_ANCHOR_URL"].endswith("/")


def test_the_broker_and_result_backend_are_the_compose_services_read_from_secret_files(compose, tmp_path):
    env = compose["x-airflow"]["environment"]
    assert "AIRFLOW__CELERY__BROKER_URL" not in env and "AIRFLOW__CELERY__RESULT_BACKEND" not in env
    subprocess.run([sys.executable, str(MAKE_SECRETS), str(tmp_path)], capture_output=True, check=False)
    broker = urlsplit((tmp_path / "airflow_broker_url").read_text())
    backend = urlsplit((tmp_path / "airflow_result_backend").read_text())

    assert broker.scheme == "redis" and broker.hostname in compose["services"]
    assert compose["services"][broker.hostname]["image"].startswith("redis:")
    assert backend.scheme.startswith("db+postgresql") and backend.hostname == "postgres"
    assert backend.path == "/airflow"  # Airflow's own database, not the ledger's
    # The broker refuses a client without its password, and its healthcheck gives it.
    redis = compose["services"]["redis"]
    assert "requirepass" in " ".join(redis["command"]) and "/run/secrets/redis_password" in " ".join(redis["command"])
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert redis["secrets"] == ["redis_password"] and "ports" not in redis


def test_the_worker_can_be_scaled_and_keeps_nothing_of_its_own_on_shared_disk(compose):
    worker = compose["services"]["airflow-worker"]
    # `docker compose up --scale airflow-worker=3`: a fixed name or host port would clash between replicas.
    assert "container_name" not in worker and "ports" not in worker
    assert not [name for name, s in compose["services"].items() if "container_name" in s]
    assert worker["command"] == ["airflow", "celery", "worker"]
    ping = " ".join(worker["healthcheck"]["test"])
    assert "celery --app airflow.providers.celery.executors.celery_executor.app inspect ping" in ping
    assert "celery@$${HOSTNAME}" in ping  # this replica, not any worker
    mounts = [v.split(":") for v in worker["volumes"]]
    # Task logs shared (the API server shows them); TRANSFERS_HOME an anonymous volume, one per replica.
    assert ["airflow-logs", "/opt/airflow/logs"] in mounts
    assert ["/var/lib/isp-transfers"] in mounts
    assert not [m for m in mounts if len(m) > 1 and m[1] == "/var/lib/isp-transfers"]
    named = [m[0] for m in mounts if len(m) > 1 and not m[0].startswith(".")]
    assert named == ["airflow-logs"]
    assert worker["depends_on"]["airflow-apiserver"] == {"condition": "service_healthy"}
    # Warm shutdown: a stopped worker finishes its tasks before Docker kills it.
    assert worker["stop_grace_period"] == "10m"


def test_the_object_store_keeps_versions_and_its_init_makes_the_buckets(compose):
    store = compose["services"]["object-store"]
    image, _, tag = store["image"].partition(":")
    assert image == "versity/versitygw" and tag.startswith("v") and tag != "latest"
    command = " ".join(store["command"])
    assert "posix --versioning-dir /data/versions /data/buckets" in command  # without it, no versioning
    assert "--health /health" in command
    assert store["secrets"] == ["object_store_access_key", "object_store_secret_key"]
    assert "ports" not in store  # only the compose network reaches it
    assert "object-store-data:/data" in store["volumes"]

    init = compose["services"]["object-store-init"]
    assert init["image"] == IMAGE and init["command"] == ["/opt/isp-transfers/deploy/object-store-init"]
    assert init["secrets"] == ["object_store_credentials"] and init["volumes"] == []
    assert ("COPY", "deploy/object-store-init /opt/isp-transfers/deploy/object-store-init") in instructions()
    assert os.access(OBJECT_STORE_INIT, os.X_OK)
    code = _code(OBJECT_STORE_INIT)
    assert 'put_bucket_versioning(Bucket=anchor, VersioningConfiguration={"Status": "Enabled"})' in code
    assert "TRANSFERS_WORK_STORE" in code and "TRANSFERS_LEDGER_ANCHOR_URL" in code


def test_the_compose_commands_are_valid_shell(compose):
    for name in ("redis", "object-store"):
        service = compose["services"][name]
        script = service["command"][-1].replace("$$", "$")
        subprocess.run(["sh", "-n", "-c", script], check=True)
    for service in compose["services"].values():
        test = (service.get("healthcheck") or {}).get("test") or []
        if test[:1] == ["CMD-SHELL"]:
            subprocess.run(["sh", "-n", "-c", test[1].replace("$$", "$")], check=True)


@pytest.fixture(scope="module")
def one_machine() -> dict:
    return yaml.safe_load(ONE_MACHINE.read_text())


def _merged_environment(base: dict, override: dict, name: str) -> dict:
    # Compose merges `environment` key by key when a second file names the same service.
    return {**base["services"][name]["environment"], **(override["services"].get(name, {}).get("environment") or {})}


def test_the_one_machine_override_runs_the_local_executor_and_no_worker(compose, one_machine, compose_schema):
    assert [f"{e.json_path}: {e.message[:200]}" for e in compose_schema.iter_errors(one_machine)] == []
    assert set(one_machine["services"]) <= set(compose["services"])
    for name in _image_services(compose):
        if name == "airflow-worker":
            continue
        env = _merged_environment(compose, one_machine, name)
        assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert env["TRANSFERS_WORKERS"] == "one", name
        assert env["TRANSFERS_WORK_STORE"] == "local", name
        # The anchor stays outside the ledger's database.
        assert env["TRANSFERS_LEDGER_ANCHOR_URL"].startswith("s3://"), name
    # A profile the file never enables: `up` leaves the workers out.
    assert one_machine["services"]["airflow-worker"]["profiles"]
    assert "COMPOSE_PROFILES" not in ONE_MACHINE.read_text()
    # Nothing that holds a value a secret should.
    assert not re.search(r"://[^/\s:@]+:[^@\s]+@", _code(ONE_MACHINE))
