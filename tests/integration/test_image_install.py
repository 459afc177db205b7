"""The deployment's image and its first start, on this machine's parts (no Docker engine runs here).

- The Dockerfile's build stage replayed into a clean folder (its COPY, ENV and RUN lines, read from
  the Dockerfile: ``uv sync --locked``), and the venv it makes checked: the locked versions and
  nothing else, the project installed as a wheel, ``transfers`` and Airflow with its providers.
- ``deploy/postgres-init.sql`` run by ``psql`` against the local PostgreSQL, as the postgres image
  runs it (scratch role and database names, dropped afterwards).
- ``deploy/object-store-init`` then ``deploy/airflow-init.sh`` run from that venv with the environment
  docker-compose.yml gives them (paths under /run/secrets and /opt mapped to folders here, the object
  store's endpoint to moto's S3 server), against those databases: the buckets made, the anchor's
  versioned; the metadata migrated with FAB, the admin user made, the ledger opened as its own role
  with its anchor in the object store, the config validated.
  As root it hands the volumes to another uid and drops to it, as in the container.
- The API server of that venv answers the healthcheck's URL without a login, and refuses the API
  without one.

Slow (a venv of ~250 packages linked from uv's cache, a metadata migration, an API server start),
hence ``integration``; the module's fixtures are shared by its tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text

from tests.integration.conftest import PG_ADMIN_URL
from tests.support.dockerfile import ROOT, build_arg, replay_build_stage, stages, without_project_env
from tests.support.http_process import serving
from tests.support.mesh_sandbox import uv_binary
from tests.support.parts import require_part
from tests.support.sshd import free_port

pytestmark = pytest.mark.integration

#: A uid that is not root's, for the part of airflow-init that runs as the services' user.
SERVICE_UID = 65534


@dataclass(frozen=True)
class Image:
    root: Path  # stands for the image's / : world-readable, so SERVICE_UID can use it
    venv: Path
    env: dict[str, str]

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)


@dataclass(frozen=True)
class Databases:
    airflow: str
    ledger: str
    airflow_role: str
    ledger_role: str
    secrets: Path


@pytest.fixture(scope="module")
def object_store() -> Iterator[str]:
    """moto's S3 server standing for the compose file's object-store service: its endpoint URL."""
    from tests.support.s3 import moto_s3

    with moto_s3() as conn:  # the tests' one moto endpoint; only its URL is wanted here
        yield conn.extra["endpoint_url"]


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    uv = uv_binary()
    require_part("uv", uv is not None, "install uv (https://docs.astral.sh/uv/)")
    assert uv is not None
    # Not under pytest's tmp folder (0700, root's): the init script's second half runs as another uid.
    root = Path(tempfile.mkdtemp(prefix="isp-image-"))
    root.chmod(0o755)
    try:
        src, venv = root / "src", root / "venv"
        src.mkdir()
        env = without_project_env()
        env["PATH"] = f"{Path(uv).parent}:{env['PATH']}"
        # The image's /opt/venv, and its Python (python:<PYTHON_VERSION>-slim) from this machine's.
        ran = replay_build_stage(
            src, env, overrides={"UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON": _python(build_arg("PYTHON_VERSION"))}
        )
        yield Image(root, venv, ran)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _python(version: str) -> str:
    """A Python ``version`` every uid may run, as the image's /usr/local/bin one (a pyenv one under /root is not)."""
    for candidate in (f"/usr/local/bin/python{version}", f"/usr/bin/python{version}"):
        if os.access(candidate, os.X_OK):
            return candidate
    require_part(
        f"Python {version} outside /root",
        os.geteuid() != 0,
        f"install python{version} (apt-get install python{version}): airflow-init drops to another uid",
    )
    return version


def _run(
    image: Image, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        env=env or without_project_env(),
        cwd=cwd or image.root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_venv_holds_exactly_the_locked_packages_and_no_dev_tools(image):
    uv = uv_binary()
    assert uv is not None
    sync = next(args for op, args in stages()[0] if op == "RUN" and "--no-install-project" not in args)
    extras = [a for a in sync.split() if a not in ("uv", "sync", "--locked", "--no-editable")]
    exported = _run(
        image,
        uv,
        "export",
        "--locked",
        "--no-hashes",
        "--no-header",
        "--no-emit-project",
        "--no-annotate",
        *extras,
        "--project",
        str(ROOT),
        env=image.env,
    )
    frozen = _run(image, uv, "pip", "freeze", "--python", image.bin("python"), env=image.env)

    assert exported.returncode == 0 and frozen.returncode == 0, exported.stderr + frozen.stderr
    locked = {
        _normal(line.split(";")[0])
        for line in exported.stdout.splitlines()
        if "==" in line and not line.startswith("#")
    }
    installed = {_normal(line) for line in frozen.stdout.splitlines() if "==" in line}
    # Markers (python_version...) drop some locked lines on this Python: every installed one is locked.
    assert installed - {"isp-transfers==0.1.0"} <= locked
    names = {line.split("==")[0] for line in installed}
    assert {
        "apache-airflow",
        "apache-airflow-providers-fab",
        "apache-airflow-providers-sftp",
        "apache-airflow-providers-postgres",
        "apache-airflow-providers-amazon",
        "asyncpg",
    } <= names
    assert not names & {"pytest", "mypy", "ruff", "moto", "check-jsonschema"}


def _normal(requirement: str) -> str:
    """``Name_x==1.0`` as ``name-x==1.0`` (PEP 503 names), so uv's two listings compare."""
    name, version = requirement.strip().split("==", 1)
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version.strip()}"


def test_the_installed_transfers_and_airflow_run_from_the_venv_not_the_source(image):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

    shown = _run(image, image.bin("transfers"), "--version")
    where = _run(
        image,
        image.bin("python"),
        "-c",
        "import transfers, transfers_airflow, airflow, airflow.providers.fab, airflow.providers.sftp, "
        "airflow.providers.postgres, airflow.providers.amazon; print(transfers.__file__); "
        "print(airflow.__version__)",
    )

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"isp-transfers {version}"
    assert where.returncode == 0, where.stderr
    path, airflow_version = where.stdout.split()
    # A wheel, not an editable install pointing back at the build folder the final image does not have.
    assert Path(path).is_relative_to(image.venv) and "site-packages" in Path(path).parts
    assert airflow_version == _locked_version("apache-airflow")


def _locked_version(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text(encoding="utf-8"))
    return next(p["version"] for p in lock["package"] if p["name"] == name)


@pytest.fixture(scope="module")
def databases(image) -> Iterator[Databases]:
    """deploy/postgres-init.sql run once, with scratch names and make-secrets' passwords."""
    psql = shutil.which("psql")
    require_part("psql", psql is not None, "install postgresql-client")
    assert psql is not None
    suffix = uuid.uuid4().hex[:8]
    names = {
        "airflow_db": f"af_{suffix}",
        "airflow_role": f"af_{suffix}",
        "ledger_db": f"tl_{suffix}",
        "ledger_role": f"tlr_{suffix}",
    }
    secrets = image.root / "secrets"
    subprocess.run(
        [image.bin("python"), str(ROOT / "deploy" / "make-secrets"), str(secrets)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    variables = [
        arg for name, value in {**names, "secrets_dir": str(secrets)}.items() for arg in ("-v", f"{name}={value}")
    ]
    made = subprocess.run(
        [
            psql,
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "--no-psqlrc",
            *variables,
            "-f",
            str(ROOT / "deploy" / "postgres-init.sql"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        if made.returncode != 0 and "could not connect" in made.stderr:
            require_part("PostgreSQL on 127.0.0.1:5432", False, made.stderr[:200])
        assert made.returncode == 0, made.stderr
        yield Databases(names["airflow_db"], names["ledger_db"], names["airflow_role"], names["ledger_role"], secrets)
    finally:
        with admin.connect() as conn:
            for db in (names["airflow_db"], names["ledger_db"]):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
            for role in (names["airflow_role"], names["ledger_role"]):
                conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _scram_matches(verifier: str, password: str) -> bool:
    """Whether PostgreSQL's SCRAM-SHA-256 verifier was made from ``password`` (RFC 5802, 7677)."""
    method, rest = verifier.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = keys.split(":")[0]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return method == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)


def test_postgres_init_gives_airflow_and_the_ledger_each_its_own_role_and_database(databases):
    admin = create_engine(PG_ADMIN_URL)
    try:
        with admin.connect() as conn:

            def one(sql: str, **params: str):
                return conn.execute(text(sql), params).scalar_one()

            owner = "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = :db"
            assert one(owner, db=databases.airflow) == databases.airflow_role
            assert one(owner, db=databases.ledger) == databases.ledger_role
            for role in (databases.airflow_role, databases.ledger_role):
                assert (
                    one("SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = :r", r=role)
                    is False
                )
            can = "SELECT has_database_privilege(:r, :db, 'CONNECT')"
            assert one(can, r=databases.airflow_role, db=databases.ledger) is False
            assert one(can, r=databases.ledger_role, db=databases.airflow) is False
            assert one(can, r=databases.ledger_role, db=databases.ledger) is True
            # Each role's password is its secret file's (one line; psql's backquotes drop a newline).
            for role, secret in (
                (databases.airflow_role, "airflow_db_password"),
                (databases.ledger_role, "transfers_ledger_password"),
            ):
                verifier = one("SELECT rolpassword FROM pg_authid WHERE rolname = :r", r=role)
                assert _scram_matches(verifier, (databases.secrets / secret).read_text())
                assert not _scram_matches(verifier, "airflow")
    finally:
        admin.dispose()


def _pinned_host_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _deployment(image: Image, databases: Databases, object_store: str) -> tuple[dict[str, str], Path]:
    """The environment docker-compose.yml gives airflow-init, with its container paths mapped to folders here.

    Returns the environment and the folder standing for /opt/isp-transfers.
    """
    opt = image.root / "opt-isp-transfers"
    if not opt.exists():
        for folder in ("config", "keys", "expectations", "dags"):
            shutil.copytree(ROOT / folder, opt / folder, ignore=shutil.ignore_patterns("__pycache__"))
        (opt / "deploy").mkdir()
        for script in ("airflow-init.sh", "object-store-init"):
            shutil.copy2(ROOT / "deploy" / script, opt / "deploy" / script)
        (image.root / "airflow").mkdir()
        if os.geteuid() == 0:  # the image's /opt/airflow is the services' user's (Dockerfile)
            os.chown(image.root / "airflow", SERVICE_UID, 0)
    secrets = databases.secrets
    # It stands for /run/secrets, where Compose mounts each file by itself: the folder's own mode plays no part.
    secrets.chmod(0o755)
    # The URLs point at this machine's server and the scratch names (trust auth: the password is carried, unused).
    for url, password, role, db in (
        ("airflow_db_url", "airflow_db_password", databases.airflow_role, databases.airflow),
        ("transfers_ledger_url", "transfers_ledger_password", databases.ledger_role, databases.ledger),
    ):
        (secrets / url).write_text(
            f"postgresql+psycopg2://{role}:{(secrets / password).read_text()}@127.0.0.1:5432/{db}"
        )
    (secrets / "connections.json").write_text(
        json.dumps(
            {
                "cs_case_db": {"conn_type": "postgres", "host": "127.0.0.1", "login": "reader", "schema": "cases"},
                "rft_exports": {"conn_type": "fs", "extra": {"path": "/srv/exports"}},
                "syp_sftp": {
                    "conn_type": "sftp",
                    "host": "sftp.syp.example",
                    "login": "mash",
                    "extra": {"host_key": _pinned_host_key()},
                },
                "cs_sftp": {
                    "conn_type": "sftp",
                    "host": "sftp.cs.example",
                    "login": "mash",
                    "extra": {"host_key": _pinned_host_key().split()[1]},
                },  # the base64 alone, as the form takes it
            }
        )
    )
    (secrets / "variables.json").write_text(
        json.dumps(
            {
                "mash_pseudonym_key": "a-test-pseudonym-key-of-no-value",
                "transfers_signing_key": "a signing key is only looked up by validate",
            }
        )
    )
    for path in secrets.iterdir():
        path.chmod(0o644)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = without_project_env()
    for key, value in compose["services"]["airflow-init"]["environment"].items():
        env[key] = (
            str(value)
            .replace("$$", "$")
            .replace("/run/secrets/", f"{secrets}/")
            .replace("/opt/isp-transfers", str(opt))
            .replace("http://object-store:7070", object_store)
        )
    env.update(
        {
            # The image's ENV (Dockerfile) and what Compose sets, mapped here.
            "PATH": f"{image.venv / 'bin'}:{env['PATH']}",
            "AIRFLOW_HOME": str(image.root / "airflow"),
            "TRANSFERS_HOME": str(image.root / "state"),
            "AIRFLOW_UID": str(SERVICE_UID),
            "AIRFLOW_ADMIN_PASSWORD_FILE": str(secrets / "airflow_admin_password"),
            # Settings reads /run/secrets/transfers_ledger_url itself in the container; there is none here.
            "TRANSFERS_LEDGER_URL": (secrets / "transfers_ledger_url").read_text(),
            "AIRFLOW__API__WORKERS": "1",
            "COLUMNS": "200",
        }
    )
    return env, opt


@dataclass(frozen=True)
class Initialised:
    env: dict[str, str]
    script: Path
    result: subprocess.CompletedProcess[str]

    def again(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.script)], env=self.env, cwd=self.script.parents[2], capture_output=True, text=True, timeout=900
        )


@pytest.fixture(scope="module")
def buckets(image, databases, object_store) -> subprocess.CompletedProcess[str]:
    """object-store-init, which airflow-init waits for in the compose file."""
    env, opt = _deployment(image, databases, object_store)
    return subprocess.run(
        [str(opt / "deploy" / "object-store-init")],
        env=env,
        cwd=image.root,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def initialised(image, databases, object_store, buckets) -> Initialised:
    env, opt = _deployment(image, databases, object_store)
    script = opt / "deploy" / "airflow-init.sh"
    init = subprocess.run([str(script)], env=env, cwd=image.root, capture_output=True, text=True, timeout=900)
    return Initialised(env, script, init)


def test_object_store_init_runs_from_the_image_and_versions_the_anchors_bucket(image, buckets, object_store):
    assert buckets.returncode == 0, buckets.stdout[-2000:] + buckets.stderr[-2000:]
    env = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-airflow"]["environment"]
    work = env["TRANSFERS_WORK_STORE"].split("/")[2]
    anchor = env["TRANSFERS_LEDGER_ANCHOR_URL"].split("/")[2]
    assert f"bucket {work} (TRANSFERS_WORK_STORE): made" in buckets.stdout
    assert f"versioning Enabled on {anchor}" in buckets.stdout


def test_airflow_init_migrates_makes_the_admin_opens_the_ledger_and_validates(image, databases, initialised):
    init = initialised.result

    assert init.returncode == 0, init.stdout[-3000:] + init.stderr[-3000:]
    assert "ok: 1 agreement(s), 2 flow(s) to send" in init.stdout
    # `transfers ledger verify` read the anchor in the object store (a missing or unversioned bucket fails it).
    assert "(anchor: s3://transfers-ledger-anchor/ledger.head)" in init.stdout
    assert (databases.secrets / "airflow_admin_password").read_text() not in init.stdout + init.stderr
    admin = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{databases.airflow}")
    try:
        with admin.connect() as conn:
            users = conn.execute(
                text(
                    "SELECT u.username, r.name FROM ab_user u JOIN ab_user_role ur "
                    "ON ur.user_id = u.id JOIN ab_role r ON r.id = ur.role_id"
                )
            ).all()
            roles = set(conn.execute(text("SELECT name FROM ab_role")).scalars())
            owners = set(conn.execute(text("SELECT tableowner FROM pg_tables WHERE schemaname = 'public'")).scalars())
    finally:
        admin.dispose()
    assert ("admin", "Admin") in users
    assert roles >= {"Admin", "Viewer", "IG Officer"}
    # Everything Airflow made is its own role's, none the superuser's.
    assert owners == {databases.airflow_role}
    if os.geteuid() == 0:
        # The volumes were handed to the services' uid before anything was written to them.
        for path in (image.root / "airflow" / "logs", image.root / "state"):
            assert path.stat().st_uid == SERVICE_UID, path

    again = initialised.again()  # every `docker compose up` runs it: a second time changes nothing
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "admin already exists" in again.stdout


def test_the_api_server_answers_the_healthcheck_url_and_refuses_the_api_without_a_login(image, initialised):
    env, init = initialised.env, initialised.result
    assert init.returncode == 0, init.stderr[-2000:]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = [image.bin("airflow"), "api-server", "--port", str(port), "--host", "127.0.0.1"]

    # Ready when the healthcheck's own URL answers, without a login (start-up is bounded at 2 minutes).
    with serving(
        argv,
        f"{base}/api/v2/version",
        image.root / "api-server.log",
        env=env,
        cwd=image.root,
        what="airflow api-server",
        seconds=120,
    ):
        with urllib.request.urlopen(f"{base}/api/v2/version", timeout=10) as answer:
            version = json.load(answer)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/v2/dags", timeout=10)

    assert version["version"] == _locked_version("apache-airflow")
    assert refused.value.code in (401, 403)


def test_what_airflow_stores_is_encrypted_with_the_fernet_key_from_its_secret_file(image, databases, initialised):
    assert initialised.result.returncode == 0, initialised.result.stderr[-2000:]
    added = _run(
        image,
        image.bin("airflow"),
        "connections",
        "add",
        "probe_db",
        "--conn-uri",
        "postgres://reader:a-stored-password@db.example/cases",
        env=initialised.env,
    )
    assert added.returncode == 0, added.stderr[-2000:]

    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{databases.airflow}")
    try:
        with engine.connect() as conn:
            stored, encrypted = conn.execute(
                text("SELECT password, is_encrypted FROM connection WHERE conn_id = 'probe_db'")
            ).one()
    finally:
        engine.dispose()

    assert encrypted is True and "a-stored-password" not in stored
    key = (databases.secrets / "airflow_fernet_key").read_text()
    assert Fernet(key.encode()).decrypt(stored.encode()) == b"a-stored-password"
