"""``SftpTarget.from_connection``: the delivery step builds its own target from a resolved connection."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transfers.agreement.flow import Recipient
from transfers.connections import ConnInfo
from transfers.delivery import SftpTarget
from transfers.errors import ConfigError


def test_a_connection_without_a_pinned_host_key_is_refused_naming_the_connection():
    conn = ConnInfo("syp_sftp", "sftp", host="sftp.example", port=22, login="u", password="s3cret-pw")
    recipient = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40)

    with pytest.raises(ConfigError) as caught:
        SftpTarget.from_connection(conn, recipient)

    assert "connection 'syp_sftp'" in str(caught.value)
    assert "extra.host_key" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)


def _host_key() -> str:
    """A pinned-key line of a fresh key (H10 changes pinning at the same time: any valid line will do here)."""
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_the_recipients_upload_and_verify_modes_reach_the_target():
    conn = ConnInfo("syp_sftp", "sftp", host="sftp.example", port=22, login="u", extra={"host_key": _host_key()})
    recipient = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40,
                          upload="direct", verify="size")

    target = SftpTarget.from_connection(conn, recipient)

    assert (target.upload, target.verify, target.recipient) == ("direct", "size", "p")
    default = SftpTarget.from_connection(conn, Recipient(partner="p", sftp="syp_sftp", path="in",
                                                         pgp_fingerprint="A" * 40))
    assert (default.upload, default.verify) == ("atomic", "read-back")


def test_an_unknown_mode_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as caught:
        SftpTarget(host="h", port=22, username="u", host_key=_host_key(), upload="posix", verify="md5")  # type: ignore[arg-type]

    assert "upload 'posix' is not atomic, rename or direct" in str(caught.value)
    assert "verify 'md5' is not read-back, size or receipt" in str(caught.value)


def test_a_direct_upload_checked_by_read_back_is_refused_as_the_agreement_refuses_it():
    with pytest.raises(ConfigError, match="upload direct cannot be checked by read-back; set verify: size or receipt"):
        SftpTarget(host="h", port=22, username="u", host_key=_host_key(), upload="direct")
