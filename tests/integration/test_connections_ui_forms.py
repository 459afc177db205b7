"""Connections made as the Airflow UI's forms make them (``--conn-type sftp``/``postgres``), used by ``transfers``.

With the SFTP and Postgres providers installed, the UI offers those connection types; a connection
saved from the form is what ``airflow connections add --conn-type ... --conn-extra ...`` stores. Here
both go into a real metastore and ``transfers validate --connect`` uses them against the private
``sshd`` (host key pinned as the bare base64 the SFTP form takes, client key in a ``key_file``
with a passphrase) and the local PostgreSQL (the form's "Database" is the connection's schema).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import airflow_env
from tests.support.ssh_keys import encrypted_openssh

pytestmark = [pytest.mark.integration, pytest.mark.airflow]


def _rows(output: str, check: str) -> list[str]:
    return [line for line in output.splitlines() if f" {check} " in line]


def test_sftp_and_postgres_connections_added_by_type_are_used_by_transfers(world, sshd, tmp_path):
    env = airflow_env(
        world,
        tmp_path / "airflow",
        AIRFLOW_VAR_MASH_PSEUDONYM_KEY=world.secrets["mash_pseudonym_key"],
        AIRFLOW_VAR_TRANSFERS_SIGNING_KEY=world.secrets["transfers_signing_key"],
    )
    # The client key in a file, encrypted, as an SFTP connection's key_file + private_key_passphrase.
    key = serialization.load_ssh_private_key(sshd.client_private_key.encode(), password=None)
    key_file = tmp_path / "id_transfers"
    key_file.write_bytes(encrypted_openssh(key, "form passphrase"))
    key_file.chmod(0o600)
    source = world.connections["cs_case_db"]
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    subprocess.run(
        [
            *airflow,
            "connections",
            "add",
            "syp_sftp",
            "--conn-type",
            "sftp",
            "--conn-host",
            sshd.host,
            "--conn-port",
            str(sshd.port),
            "--conn-login",
            sshd.username,
            "--conn-extra",
            json.dumps(
                {
                    "host_key": sshd.host_key_line.split()[1],  # the base64 alone
                    "key_file": str(key_file),
                    "private_key_passphrase": "form passphrase",
                }
            ),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    subprocess.run(
        [
            *airflow,
            "connections",
            "add",
            "cs_case_db",
            "--conn-type",
            "postgres",
            "--conn-host",
            str(source.host),
            "--conn-port",
            str(source.port),
            "--conn-login",
            str(source.login),
            "--conn-schema",
            str(source.schema),
            "--conn-extra",
            json.dumps({"sslmode": "prefer"}),
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    command = Path(sys.executable).parent / "transfers"

    found = subprocess.run(
        [str(command), "validate", "--connect", "mash-referrals.A"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert found.returncode == 0, found.stdout + found.stderr
    assert "ok" in _rows(found.stdout, "connection syp_sftp")[0]
    assert "ok" in _rows(found.stdout, "connection cs_case_db")[0]
    assert "ok" in _rows(found.stdout, "source cs_case_db")[0]
    assert "form passphrase" not in found.stdout + found.stderr
    assert "PRIVATE KEY" not in found.stdout + found.stderr
