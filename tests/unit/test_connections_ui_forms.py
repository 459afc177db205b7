"""The fields of the connection forms the Airflow UI offers (sftp, postgres, aws providers) reach the steps.

A connection made in the UI is stored in the providers' shapes: an SFTP ``host_key`` may be the
base64 key alone, the client key a ``key_file`` with a ``private_key_passphrase``; a Postgres
connection's "Database" is its schema and its TLS settings are in the extra; an AWS connection may
carry a session token. Keys are generated at run time.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.ssh_keys import encrypted_openssh
from transfers.agreement.flow import Recipient
from transfers.connections import ConnInfo, parse_connection
from transfers.delivery import SftpTarget
from transfers.delivery.hostkeys import HostKeyPin
from transfers.delivery.session import _client_key
from transfers.errors import ConfigError
from transfers.retention import s3
from transfers.sources import sqlalchemy_url

RECIPIENT = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40)


def _public_line(private: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    )


def _sftp(**extra: object) -> ConnInfo:
    return ConnInfo("syp_sftp", "sftp", host="sftp.example", port=22, login="u", extra=extra)


@pytest.mark.parametrize(
    "private", [Ed25519PrivateKey.generate(), ec.generate_private_key(ec.SECP256R1())], ids=["ed25519", "ecdsa"]
)
def test_a_host_key_given_as_the_base64_alone_pins_the_same_key_of_its_own_type(private):
    line = _public_line(private)
    key_type, blob = line.split()

    target = SftpTarget.from_connection(_sftp(host_key=blob), RECIPIENT)

    (pin,) = target.host_keys
    assert pin.key_type == key_type
    assert pin.matches(HostKeyPin(line).key)


def test_a_base64_host_key_that_is_no_key_is_refused_naming_the_connection():
    with pytest.raises(ConfigError) as caught:
        SftpTarget.from_connection(_sftp(host_key="bm90IGEga2V5IGF0IGFsbA=="), RECIPIENT)

    assert "connection 'syp_sftp'" in str(caught.value) and "extra.host_key" in str(caught.value)


def test_no_host_key_check_from_the_sftp_form_is_not_honoured_and_says_so():
    with pytest.raises(ConfigError) as caught:
        SftpTarget.from_connection(_sftp(no_host_key_check="true"), RECIPIENT)

    assert "extra.host_key is missing" in str(caught.value)
    assert "no_host_key_check is not honoured" in str(caught.value)


def test_the_client_key_can_be_a_key_file_with_a_passphrase(tmp_path):
    private = Ed25519PrivateKey.generate()
    key_file = tmp_path / "id_ed25519"
    key_file.write_bytes(encrypted_openssh(private, "a passphrase"))
    conn = _sftp(
        host_key=_public_line(Ed25519PrivateKey.generate()),
        key_file=str(key_file),
        private_key_passphrase="a passphrase",
    )

    target = SftpTarget.from_connection(conn, RECIPIENT)

    assert target.private_key == key_file.read_text()
    assert "a passphrase" not in repr(target)
    assert _client_key(target).asbytes() == HostKeyPin(_public_line(private)).key.asbytes()


def test_a_wrong_passphrase_is_refused_without_quoting_it(tmp_path):
    private = Ed25519PrivateKey.generate()
    text = encrypted_openssh(private, "the right one").decode()
    conn = _sftp(host_key=_public_line(private), private_key=text, private_key_passphrase="a wrong one")

    with pytest.raises(ConfigError) as caught:
        _client_key(SftpTarget.from_connection(conn, RECIPIENT))

    assert "private_key_passphrase" in str(caught.value)
    assert "a wrong one" not in str(caught.value) and "PRIVATE KEY" not in str(caught.value)


def test_an_unreadable_key_file_is_named_with_the_connection(tmp_path):
    conn = _sftp(host_key=_public_line(Ed25519PrivateKey.generate()), key_file=str(tmp_path / "absent"))

    with pytest.raises(ConfigError) as caught:
        SftpTarget.from_connection(conn, RECIPIENT)

    assert "connection 'syp_sftp'" in str(caught.value) and str(tmp_path / "absent") in str(caught.value)


def test_the_postgres_forms_database_and_tls_settings_reach_the_url():
    conn = ConnInfo(
        "cs_case_db",
        "postgres",
        host="db.example",
        port=5432,
        login="reader",
        password="pw",
        schema="cases",
        extra={"sslmode": "verify-full", "sslrootcert": "/etc/ca.pem", "cursor": "dictcursor"},
    )

    url = sqlalchemy_url(conn)

    assert url.startswith("postgresql+psycopg2://reader:pw@db.example:5432/cases?")
    assert "sslmode=verify-full" in url and "sslrootcert=%2Fetc%2Fca.pem" in url
    assert "cursor" not in url  # the provider's own setting, not libpq's


def test_a_postgres_uri_with_sslmode_keeps_it():
    conn = parse_connection("cs_case_db", "postgres://reader:pw@db.example/cases?sslmode=require")

    assert sqlalchemy_url(conn).endswith("/cases?sslmode=require")


def test_postgres_iam_authentication_is_refused_rather_than_tried_without_a_password():
    conn = ConnInfo("cs_case_db", "postgres", host="db.example", login="reader", schema="cases", extra={"iam": True})

    with pytest.raises(ConfigError, match="connection 'cs_case_db': extra.iam"):
        sqlalchemy_url(conn)


def test_an_aws_connections_session_token_signs_the_s3_requests():
    conn = ConnInfo(
        "archive",
        "aws",
        login="AKIAEXAMPLE",
        password="secret-key",
        extra={"region_name": "eu-west-2", "aws_session_token": "a-session-token"},
    )

    credentials = s3.client(conn)._request_signer._credentials

    assert (credentials.access_key, credentials.token) == ("AKIAEXAMPLE", "a-session-token")


def test_an_aws_connection_that_assumes_a_role_is_refused():
    conn = ConnInfo(
        "archive",
        "aws",
        login="AKIAEXAMPLE",
        password="secret-key",
        extra={"role_arn": "arn:aws:iam::123456789012:role/archive"},
    )

    with pytest.raises(ConfigError, match="connection 'archive': extra.role_arn"):
        s3.client(conn)
