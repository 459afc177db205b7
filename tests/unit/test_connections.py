from __future__ import annotations

import pytest

from transfers.connections import ConnInfo, env_connection, env_secret, parse_connection
from transfers.errors import ConfigError, SecretMissing


def test_uri_form_like_airflow():
    conn = parse_connection("cs_case_db", "postgres://reader:p%40ss@db.example:5433/cases?sslmode=require")
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == (
        "postgres", "db.example", 5433, "reader", "p@ss", "cases")
    assert conn.extra == {"sslmode": "require"}


def test_json_form_with_extra():
    conn = parse_connection("syp_sftp", '{"conn_type": "sftp", "host": "h", "port": "2222", '
                                        '"login": "u", "extra": {"host_key": "ssh-ed25519 AAAA"}}')
    assert conn.port == 2222 and conn.extra["host_key"] == "ssh-ed25519 AAAA"


def test_password_is_not_in_the_repr():
    conn = parse_connection("db", "postgres://u:topsecret@h/db")
    assert "topsecret" not in repr(conn)


def test_broken_json_names_the_connection_not_its_value():
    with pytest.raises(ConfigError) as caught:
        parse_connection("syp_sftp", '{"conn_type": "sftp", "password": "hunter2",')
    assert "syp_sftp" in str(caught.value) and "hunter2" not in str(caught.value)


def test_missing_connection_and_secret_say_which_variable_to_set():
    with pytest.raises(SecretMissing, match="AIRFLOW_CONN_SYP_SFTP"):
        env_connection("syp_sftp", {})
    with pytest.raises(SecretMissing, match="AIRFLOW_VAR_MASH_PSEUDONYM_KEY"):
        env_secret("mash_pseudonym_key", {})
    assert env_secret("mash_pseudonym_key", {"AIRFLOW_VAR_MASH_PSEUDONYM_KEY": "k"}) == "k"


def test_the_cli_reads_the_environment_until_a_console_entry_installs_other_lookups(monkeypatch):
    from transfers import connections

    monkeypatch.setenv("AIRFLOW_CONN_SYP_SFTP", '{"conn_type": "sftp", "host": "from-env"}')
    monkeypatch.setattr(connections, "_cli_lookups", {})
    assert connections.cli_connection("syp_sftp").host == "from-env"

    connections.install_cli_lookups(lambda conn_id: ConnInfo(conn_id, "sftp", host="from-airflow"),
                                    lambda name: f"value of {name}")
    assert connections.cli_connection("syp_sftp").host == "from-airflow"
    assert connections.cli_secret("mash_pseudonym_key") == "value of mash_pseudonym_key"
