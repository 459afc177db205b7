"""The commands docker-compose.yml gives its non-Airflow services, run on this machine's parts (no Docker engine here).

- ``deploy/object-store-init`` (the one-shot service that makes the buckets) against moto's S3
  server, with the credentials file deploy/make-secrets writes and the settings the compose file gives.
- The ``redis`` service's own command, run by ``sh`` with the local ``redis-server`` (container paths
  mapped to folders here, on a free port): the broker refuses a client without the password.
- The ``object-store`` service's own command with a stand-in ``versitygw`` on PATH (versitygw itself
  is not installed here): what the real binary would be started with, arguments and root keys.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from tests.support.parts import require_part
from tests.support.sshd import free_port
from transfers.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
OBJECT_STORE_INIT = PROJECT_ROOT / "deploy" / "object-store-init"


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("compose") / "secrets"
    subprocess.run([sys.executable, str(PROJECT_ROOT / "deploy" / "make-secrets"), str(folder)], capture_output=True)
    return folder


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    from tests.support.s3 import moto_s3

    with moto_s3() as conn:  # the tests' one moto endpoint; only its URL is wanted here
        yield conn.extra["endpoint_url"]


def _client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def buckets(endpoint: str) -> Iterator[tuple[str, str]]:
    """Unique names for the work store's and the anchor's buckets; whatever exists of them removed after."""
    suffix = uuid.uuid4().hex[:8]
    names = (f"transfers-work-{suffix}", f"transfers-ledger-anchor-{suffix}")
    yield names
    s3 = _client(endpoint)
    for bucket in names:
        try:
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
            s3.delete_bucket(Bucket=bucket)
        except s3.exceptions.NoSuchBucket:
            pass


def _init_env(endpoint: str, secrets: Path, work: str, anchor: str) -> dict[str, str]:
    """The environment compose gives object-store-init, its endpoint and secrets mapped to this machine's."""
    compose_env = COMPOSE["services"]["object-store-init"]["environment"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "TRANSFERS_"))}
    for key in ("AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED"):
        env[key] = str(compose_env[key])
    env.update(
        {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_SHARED_CREDENTIALS_FILE": compose_env["AWS_SHARED_CREDENTIALS_FILE"].replace(
                "/run/secrets/", f"{secrets}/"
            ),
            "TRANSFERS_WORK_STORE": compose_env["TRANSFERS_WORK_STORE"].replace("transfers-work", work),
            "TRANSFERS_LEDGER_ANCHOR_URL": compose_env["TRANSFERS_LEDGER_ANCHOR_URL"].replace(
                "transfers-ledger-anchor", anchor
            ),
        }
    )
    return env


def _run_init(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(OBJECT_STORE_INIT)], env=env, capture_output=True, text=True, timeout=120
    )


def test_object_store_init_makes_both_buckets_and_versions_the_anchors_alone(endpoint, secrets, buckets):
    work, anchor = buckets
    env = _init_env(endpoint, secrets, work, anchor)

    made = _run_init(env)

    assert made.returncode == 0, made.stderr
    s3 = _client(endpoint)
    assert s3.get_bucket_versioning(Bucket=anchor).get("Status") == "Enabled"
    assert "Status" not in s3.get_bucket_versioning(Bucket=work)
    assert f"bucket {work} (TRANSFERS_WORK_STORE): made" in made.stdout
    assert f"bucket {anchor} (TRANSFERS_LEDGER_ANCHOR_URL): made" in made.stdout
    for secret in ("object_store_access_key", "object_store_secret_key"):
        assert (secrets / secret).read_text() not in made.stdout + made.stderr

    # Every `docker compose up` runs it again: nothing changes, nothing fails.
    again = _run_init(env)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count(": kept") == 2


def test_object_store_init_on_one_machine_makes_the_anchors_bucket_alone(endpoint, secrets, buckets):
    work, anchor = buckets
    one_machine = yaml.safe_load((PROJECT_ROOT / "docker-compose.one-machine.yml").read_text())
    env = {
        **_init_env(endpoint, secrets, work, anchor),
        "TRANSFERS_WORK_STORE": one_machine["services"]["object-store-init"]["environment"]["TRANSFERS_WORK_STORE"],
    }

    made = _run_init(env)

    assert made.returncode == 0, made.stderr
    names = [b["Name"] for b in _client(endpoint).list_buckets()["Buckets"]]
    assert anchor in names and work not in names
    assert _client(endpoint).get_bucket_versioning(Bucket=anchor).get("Status") == "Enabled"


def test_object_store_init_refuses_a_versioned_work_store(endpoint, secrets, buckets):
    work, anchor = buckets
    s3 = _client(endpoint)
    s3.create_bucket(Bucket=work)
    s3.put_bucket_versioning(Bucket=work, VersioningConfiguration={"Status": "Enabled"})

    refused = _run_init(_init_env(endpoint, secrets, work, anchor))

    assert refused.returncode == 1
    assert f"bucket {work} (TRANSFERS_WORK_STORE): versioning is Enabled" in refused.stderr


def test_object_store_init_refuses_one_bucket_for_both_and_makes_nothing(endpoint, secrets, buckets):
    work, _ = buckets
    env = _init_env(endpoint, secrets, work, work)

    refused = _run_init(env)

    assert refused.returncode == 2
    assert "TRANSFERS_WORK_STORE and TRANSFERS_LEDGER_ANCHOR_URL both name bucket" in refused.stderr
    assert work not in [b["Name"] for b in _client(endpoint).list_buckets()["Buckets"]]


def test_object_store_init_names_an_endpoint_that_does_not_answer(secrets, buckets):
    work, anchor = buckets
    down = f"http://127.0.0.1:{free_port()}"
    env = {**_init_env(down, secrets, work, anchor), "OBJECT_STORE_READY_SECONDS": "1"}

    refused = _run_init(env)

    assert refused.returncode == 1
    assert f"the object store at {down} did not answer" in refused.stderr


def _service_script(name: str, mapping: dict[str, str]) -> str:
    script = str(COMPOSE["services"][name]["command"][-1]).replace("$$", "$")
    for inside, here in mapping.items():
        script = script.replace(inside, here)
    return script


def _redis_cli(port: int, *argv: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *argv], env=env, capture_output=True, text=True, timeout=10
    )


def test_the_redis_service_command_starts_a_broker_that_wants_its_password(secrets, tmp_path):
    require_part("redis-server", shutil.which("redis-server") is not None, "install redis-server")
    run = tmp_path / "run-redis"
    run.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    port = free_port()
    script = _service_script("redis", {"/run/secrets/": f"{secrets}/", "/run/redis/": f"{run}/"})
    # This machine's Redis already has 6379, and the image's /data is its working folder.
    script += f" --port {port} --bind 127.0.0.1 --dir {data}"
    password = (secrets / "redis_password").read_text()
    server = subprocess.Popen(["sh", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):  # bounded: 10 s
            if _redis_cli(port, "ping", password=password).stdout.strip() == "PONG":
                break
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            time.sleep(0.1)
        else:
            pytest.fail("redis-server did not answer within 10 s")

        assert "NOAUTH" in _redis_cli(port, "ping").stdout + _redis_cli(port, "ping").stderr
        assert _redis_cli(port, "ping", password="not-the-password").stdout.strip() != "PONG"
        # The compose healthcheck, as Docker runs it, on this port.
        check = COMPOSE["services"]["redis"]["healthcheck"]["test"][1].replace("$$", "$")
        check = check.replace("/run/secrets/", f"{secrets}/").replace("redis-cli ping", f"redis-cli -p {port} ping")
        assert subprocess.run(["sh", "-c", check], timeout=10).returncode == 0
        # exec: the server is the shell's own process, its command line without the password.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode()
        assert "redis-server" in cmdline and password not in cmdline
        assert stat.S_IMODE((run / "redis.conf").stat().st_mode) == 0o600
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_object_store_service_command_starts_versitygw_with_versioning_and_its_root_keys(secrets, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen"
    stand_in = bin_dir / "versitygw"
    stand_in.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}/argv\n'
        f'printf "%s\\n%s\\n" "$ROOT_ACCESS_KEY" "$ROOT_SECRET_KEY" > {seen}/keys\n'
    )
    stand_in.chmod(0o755)
    seen.mkdir()
    data = tmp_path / "data"
    script = _service_script("object-store", {"/run/secrets/": f"{secrets}/", "/data/": f"{data}/"})
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    started = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30)

    assert started.returncode == 0, started.stderr
    argv = (seen / "argv").read_text().split()
    assert argv == [
        "--port",
        ":7070",
        "--health",
        "/health",
        "posix",
        "--versioning-dir",
        f"{data}/versions",
        f"{data}/buckets",
    ]
    assert (data / "versions").is_dir() and (data / "buckets").is_dir()
    assert (seen / "keys").read_text().split() == [
        (secrets / "object_store_access_key").read_text(),
        (secrets / "object_store_secret_key").read_text(),
    ]

    # A missing key file stops it before the gateway starts (versitygw would run without a root user).
    empty = tmp_path / "empty-secrets"
    empty.mkdir()
    (seen / "argv").unlink()
    refused = subprocess.run(
        ["sh", "-c", script.replace(f"{secrets}/", f"{empty}/")], env=env, capture_output=True, timeout=30
    )
    assert refused.returncode != 0 and not (seen / "argv").exists()
