"""``transfers validate`` finds undefined connections and secrets; ``--connect`` proves each one works.

Against real parts: the world's PostgreSQL source and CSV exports, the private ``sshd`` (a wrong
host key, a read-only remote directory), ``gpg``-made keys (one expiring in 10 days), and, in the
``airflow`` test, a connection that exists only in Airflow's metastore (``airflow connections add``).
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE, airflow_env, conn_json, sftp_conn
from tests.support.tables import table_rows

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def wide_table(monkeypatch):
    """A wide console, so each check's name and status stay on one table line."""
    monkeypatch.setenv("COLUMNS", "300")


def rows(output: str, check: str) -> list[str]:
    """The table lines of one check (the status and the start of its detail are on that line)."""
    return [line for line in output.splitlines() if f" {check} " in line]


def test_plain_validate_fails_naming_each_connection_and_secret_that_is_not_defined(cli, world):
    del world.connections["syp_sftp"]
    world.secrets["mash_pseudonym_key"] = ""  # AIRFLOW_VAR_MASH_PSEUDONYM_KEY set but empty

    result = cli("validate")

    assert result.exit_code == 2, result.output
    assert "flow A: connection syp_sftp: SFTP to south-yorkshire-police: connection 'syp_sftp' is not set" in result.output
    assert "flow A: secret mash_pseudonym_key: pseudonymisation key: secret 'mash_pseudonym_key' is not set" in (
        result.output)
    assert "connection cs_case_db" not in result.output  # defined ones are not problems


def test_plain_validate_reads_the_host_key_pins_and_names_a_malformed_one(cli, world, sshd):
    base = sftp_conn("syp_sftp", sshd)
    world.connections["syp_sftp"] = replace(base, extra={
        "host_keys": [{"key": sshd.host_key_line, "untill": "2026-12-31"}], "private_key": sshd.client_private_key})

    result = cli("validate")

    assert result.exit_code == 2, result.output
    assert "connection syp_sftp: SFTP to south-yorkshire-police: connection 'syp_sftp': extra.host_keys[0]: must be" in (
        " ".join(result.output.split()))


def test_preflight_table_reads_in_80_columns_with_each_check_and_status_whole(cli, world, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 0, result.output
    assert [line for line in result.stdout.splitlines() if len(line) > 80] == []
    checks = table_rows(result.stdout)
    assert len(checks) >= 5 and {row["status"] for row in checks} == {"ok"}
    assert {row["flow"] for row in checks} == {"mash-referrals.A send"}
    assert {"source cs_case_db", "SFTP syp_sftp", "key south-yorkshire-police"} <= {row["check"] for row in checks}
    assert "host key is the pinned one, login ok" in next(r["detail"] for r in checks if r["check"] == "SFTP syp_sftp")


def test_preflight_passes_against_the_real_source_sftp_and_keys_and_leaves_nothing_behind(cli, world, sshd):
    result = cli("validate", "--connect")

    assert result.exit_code == 0, result.output
    out = result.output
    assert "ok" in rows(out, "source cs_case_db")[0] and "9 columns" in out
    assert "ok" in rows(out, "source rft_exports")[0]
    assert "ok" in rows(out, "SFTP syp_sftp")[0] and "host key is the pinned one, login ok" in out
    assert "ok" in rows(out, "key south-yorkshire-police")[0]
    assert "ok" in rows(out, "consent register / opt-out list")[0]
    assert "FAILED" not in out
    assert not list(sshd.root.rglob(".transfers-preflight-*"))  # the test file was removed


def test_preflight_runs_the_extract_query_with_limit_0_and_names_a_wrong_column(cli, world):
    query = world.settings.config_dir / "sql" / "mash_referrals.sql"
    query.write_text(query.read_text().replace("category", "categroy"))

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    line = " ".join(rows(result.output, "source cs_case_db"))
    assert "FAILED" in line and "mash_referrals.sql failed (with LIMIT 0)" in result.output
    assert "categroy" in result.output
    assert "mash-referrals.B" not in result.output  # only the flow asked for


def test_preflight_names_the_host_whose_key_is_not_the_pinned_one(cli, world, sshd):
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    assert "FAILED" in rows(result.output, "SFTP syp_sftp")[0]
    assert f"SFTP server {sshd.host}:{sshd.port}: host key" in result.output and "is not the pinned" in result.output
    assert "1 of " in result.output and "check(s) FAILED" in result.output


def test_preflight_shows_each_host_key_pin_warns_of_one_ending_soon_and_refuses_it_after(cli, world, sshd):
    ending = datetime.now(UTC).date() + timedelta(days=10)
    base = sftp_conn("syp_sftp", sshd)
    world.connections["syp_sftp"] = replace(base, extra={
        "host_keys": [{"key": sshd.host_key_line, "until": ending.isoformat()}, {"key": sshd.other_host_key_line}],
        "private_key": sshd.client_private_key})
    old = subprocess.run(["ssh-keygen", "-lf", str(sshd.workdir / "host_ed25519.pub")], capture_output=True,
                         text=True, check=True).stdout.split()[1]

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "ok" in rows(result.output, "SFTP syp_sftp")[0]
    # The detail cell folds onto more lines: read it back whole.
    detail = next(row["detail"] for row in table_rows(result.output) if row["check"] == "SFTP syp_sftp")
    assert f"the server showed ssh-ed25519 {old} (until {ending})" in detail
    assert f"pins: ssh-ed25519 {old} (until {ending}), ssh-ed25519 SHA256:" in detail
    assert detail.endswith("(no end date)")  # the new key's pin, with no end date
    assert (f"warning: mash-referrals.A (send): SFTP syp_sftp: pin ssh-ed25519 {old} ends on {ending} "
            "(in 10 days)") in text

    later = cli("validate", "--connect", "mash-referrals.A", "--as-of", (ending + timedelta(days=1)).isoformat())

    assert later.exit_code == 1, later.output
    assert "FAILED" in rows(later.output, "SFTP syp_sftp")[0]
    assert f"host key ssh-ed25519 {old} was pinned only until {ending}" in " ".join(later.output.split())


def test_preflight_names_a_remote_directory_the_login_cannot_write(cli, world, sshd, mounts):
    recipient_dir = world.config.flow("mash-referrals.A").flow.to[0].path
    mounts.read_only(sshd.root / recipient_dir)  # even root cannot write under a read-only mount

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    assert "FAILED" in rows(result.output, "SFTP syp_sftp")[0]
    assert f"sftp://{sshd.host}:{sshd.port}/{recipient_dir}: cannot write a file there" in result.output
    assert not list((sshd.root / recipient_dir).iterdir())


def test_preflight_refuses_a_recipient_key_expiring_within_30_days(cli, world, gpg_home, gpg_sender):
    fpr = gpg_home.generate_key("SYP (expiring) <syp@example.invalid>", algo="cv25519", expire="10d")
    key_file = gpg_home.export_public(fpr, world.settings.keys / "south-yorkshire-police.asc")
    key_file.write_text(key_file.read_text() + gpg_sender.public_key_path.read_text())  # its sign-off key stays
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][0]["to"][0]["pgp_fingerprint"] = fpr
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.resign()  # the edited agreement, signed again by every partner

    assert cli("validate").exit_code == 0  # fine for tonight: plain validate's margin is 7 days
    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    assert "FAILED" in rows(result.output, "key south-yorkshire-police")[0]
    assert "south-yorkshire-police.asc" in result.output and "within the safety margin" in result.output


def _airflow_metastore(world, tmp_path, connections: tuple[str, ...]) -> dict[str, str]:
    """A migrated Airflow metastore holding ``connections`` (added with ``airflow connections add``) and the
    pseudonym key (``airflow variables set``); the rest of the world's connections only in the environment.
    Returns the environment the ``transfers`` command runs in."""
    env = airflow_env(world, tmp_path / "airflow",
                      AIRFLOW_VAR_TRANSFERS_SIGNING_KEY=world.secrets["transfers_signing_key"])
    for conn_id, conn in world.connections.items():
        if conn_id not in connections:
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = conn_json(conn)
    airflow = [sys.executable, "-m", "airflow"]
    subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True, timeout=600)
    for conn_id in connections:
        subprocess.run([*airflow, "connections", "add", conn_id, "--conn-json", conn_json(world.connections[conn_id])],
                       env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([*airflow, "variables", "set", "mash_pseudonym_key", world.secrets["mash_pseudonym_key"]],
                   env=env, check=True, capture_output=True, timeout=300)
    return env


@pytest.mark.airflow
def test_the_transfers_command_finds_a_connection_added_with_airflow_connections_add(world, tmp_path):
    """The metastore, not the environment: the env-only CLI (``python -m transfers``) cannot see it."""
    env = _airflow_metastore(world, tmp_path, ("cs_case_db",))
    command = Path(sys.executable).parent / "transfers"

    found = subprocess.run([str(command), "validate", "--connect", "mash-referrals.A"], env=env,
                           capture_output=True, text=True, timeout=600)
    env_only = subprocess.run([sys.executable, "-m", "transfers", "validate", "--connect", "mash-referrals.A"],
                              env=env, capture_output=True, text=True, timeout=600)

    assert found.returncode == 0, found.stdout + found.stderr
    assert "ok" in rows(found.stdout, "connection cs_case_db")[0]
    assert "ok" in rows(found.stdout, "source cs_case_db")[0]
    assert "ok" in rows(found.stdout, "secret mash_pseudonym_key")[0]
    assert world.secrets["mash_pseudonym_key"] not in found.stdout + found.stderr
    assert "ok" in rows(found.stdout, "signing key rotherham-childrens-services")[0]
    assert "PRIVATE KEY" not in found.stdout + found.stderr
    assert env_only.returncode == 1
    assert "connection 'cs_case_db' is not set" in env_only.stdout



@pytest.mark.airflow
def test_transfers_run_delivers_through_connections_added_with_airflow_connections_add(world, tmp_path):
    """A whole run whose source database and SFTP server exist only as Airflow connections, and whose
    pseudonym key only as an Airflow Variable: the installed ``transfers`` resolves them through Airflow."""
    env = _airflow_metastore(world, tmp_path, ("cs_case_db", "syp_sftp"))
    assert not any(name in env for name in ("AIRFLOW_CONN_CS_CASE_DB", "AIRFLOW_CONN_SYP_SFTP"))
    command = Path(sys.executable).parent / "transfers"

    run = subprocess.run([str(command), "run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat()], env=env,
                         capture_output=True, text=True, timeout=900)

    assert run.returncode == 0, run.stdout + run.stderr
    assert "south-yorkshire-police: delivered" in run.stdout
    assert len(world.delivered("inbound/mash")) == 1
    assert world.secrets["mash_pseudonym_key"] not in run.stdout + run.stderr

def test_preflight_names_a_consent_list_whose_table_is_wrong(cli, world):
    from tests.integration.privacy_world import edit_agreement, flow_of

    def wrong_opt_outs(data: dict) -> None:
        flow_of(data, "A")["consent"]["opt_outs"] = {"kind": "sql", "connection": "cs_case_db", "table": "opt_outz",
                                                     "subject": "nhs", "status": None, "effective": None}
    edit_agreement(world, wrong_opt_outs)

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    assert "FAILED" in " ".join(rows(result.output, "consent register / opt-out list"))
    assert "table 'opt_outz' not found" in result.output
