"""SFTP delivery against a real OpenSSH ``sshd``: pinned host key, no partial files, no overwrites.

What lands is read from the directory behind the server's SFTP root, as the
partner would see it; what is delivered is decrypted by the real ``gpg``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import run_sshd
from transfers.crypto import encrypt_to_file, load_recipient_key
from transfers.delivery import (
    DISABLED_ALGORITHMS,
    SftpTarget,
    deliver_file,
    list_remote,
    open_sftp,
    remove_remote,
)
from transfers.devkit.gpg import GpgError
from transfers.errors import (
    ConfigError,
    DeliveryConflict,
    DeliveryRefused,
    DeliveryUnavailable,
    HostKeyMismatch,
    RetriableError,
    TerminalError,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def remote_dir() -> str:
    """A directory of this test's own on the shared server."""
    return f"t-{uuid.uuid4().hex[:8]}/inbound"


def names(root: Path, remote_dir: str) -> list[str]:
    """Everything the partner sees in ``remote_dir``, hidden files included."""
    path = root / remote_dir
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def connect(target: SftpTarget, **kwargs: float) -> None:
    """Open and close a session: enough to hit the host key and login checks."""
    with open_sftp(target, **kwargs):
        pass


def ssh_fingerprint(public_key: Path) -> str:
    """``SHA256:...`` of a public key file, computed by ``ssh-keygen``."""
    return subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True, check=True
    ).stdout.split()[1]


def local_file(tmp_path: Path, content: bytes, name: str = "delivery.csv.pgp") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_delivery_lands_under_its_final_name_and_gpg_decrypts_it(sshd, gpg_partner, remote_dir, tmp_path):
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    plaintext = b"referral_id,outcome\n" + b"R000001,referred\n" * 5000
    encrypted = encrypt_to_file(plaintext, key, tmp_path / "mash_2026-11-23.csv.pgp", filename="mash.csv")

    with open_sftp(sshd.target(remote_dir)) as session:
        receipt = deliver_file(session, encrypted.path, encrypted.path.name)

    landed = sshd.root / remote_dir / "mash_2026-11-23.csv.pgp"
    assert receipt.status == "delivered"
    assert receipt.remote_path == f"{remote_dir}/mash_2026-11-23.csv.pgp"
    assert (receipt.size, receipt.sha256) == (encrypted.size, encrypted.sha256)
    assert names(sshd.root, remote_dir) == ["mash_2026-11-23.csv.pgp"]  # no temporary file left
    assert landed.read_bytes() == encrypted.path.read_bytes()
    assert gpg_partner.home.decrypt(landed) == plaintext


def test_flipping_one_byte_of_a_delivery_makes_gpg_refuse_it(sshd, gpg_partner, remote_dir, tmp_path):
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    encrypted = encrypt_to_file(os.urandom(32 * 1024), key, tmp_path / "x.csv.pgp", filename="x.csv")
    with open_sftp(sshd.target(remote_dir)) as session:
        deliver_file(session, encrypted.path, "x.csv.pgp")
    landed = sshd.root / remote_dir / "x.csv.pgp"
    data = bytearray(landed.read_bytes())
    data[len(data) * 2 // 3] ^= 0x80
    landed.write_bytes(bytes(data))

    with pytest.raises(GpgError, match="refused"):
        gpg_partner.home.decrypt(landed)


def test_a_changed_host_key_stops_before_anything_reaches_the_server(sshd, remote_dir, tmp_path):
    target = sshd.target(remote_dir, host_key=sshd.other_host_key_line)

    with pytest.raises(HostKeyMismatch) as caught, open_sftp(target) as session:
        deliver_file(session, local_file(tmp_path, b"secret"), "x.csv.pgp")

    message = str(caught.value)
    assert f"{sshd.host}:{sshd.port}" in message
    # Both fingerprints, as OpenSSH prints them: the one pinned and the one the server offered.
    assert ssh_fingerprint(sshd.workdir / "other_host_ed25519.pub") in message
    assert ssh_fingerprint(sshd.workdir / "host_ed25519.pub") in message
    assert isinstance(caught.value, TerminalError)
    assert not (sshd.root / remote_dir.split("/")[0]).exists()  # not even the directory


def test_a_host_key_of_another_type_is_a_mismatch_too(sshd, remote_dir, tmp_path):
    ecdsa = tmp_path / "ecdsa_host"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", str(ecdsa)], check=True)
    line = " ".join(ecdsa.with_suffix(".pub").read_text().split()[:2])

    with pytest.raises(HostKeyMismatch, match=r"host key ssh-ed25519 SHA256:\S+ is not the pinned ecdsa"):
        connect(sshd.target(remote_dir, host_key=line))
    assert not (sshd.root / remote_dir.split("/")[0]).exists()


def test_redelivering_the_identical_file_is_reconciled_not_sent_again(sshd, remote_dir, tmp_path):
    path = local_file(tmp_path, os.urandom(100_000))
    with open_sftp(sshd.target(remote_dir)) as session:
        first = deliver_file(session, path, path.name)
    landed = sshd.root / remote_dir / path.name
    before = landed.stat()

    with open_sftp(sshd.target(remote_dir)) as session:
        second = deliver_file(session, path, path.name)

    assert (first.status, second.status) == ("delivered", "reconciled")
    assert (second.remote_path, second.size, second.sha256) == (first.remote_path, first.size, first.sha256)
    after = landed.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # untouched
    assert names(sshd.root, remote_dir) == [path.name]


@pytest.mark.parametrize("same_size", [False, True], ids=["different size", "same size, other bytes"])
def test_a_different_file_under_the_same_name_is_a_conflict_and_left_alone(sshd, remote_dir, tmp_path, same_size):
    original = os.urandom(50_000)
    other = os.urandom(50_000 if same_size else 40_000)
    with open_sftp(sshd.target(remote_dir)) as session:
        deliver_file(session, local_file(tmp_path, original, "a"), "x.csv.pgp")
        with pytest.raises(DeliveryConflict) as caught:
            deliver_file(session, local_file(tmp_path, other, "b"), "x.csv.pgp")

    assert f"{sshd.host}:{sshd.port}/{remote_dir}/x.csv.pgp" in str(caught.value)
    assert (sshd.root / remote_dir / "x.csv.pgp").read_bytes() == original
    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]


@pytest.mark.parametrize(
    ("denied", "error", "match"),
    [
        # The server takes the upload but refuses to rename it into place.
        ("rename,posix-rename", DeliveryRefused, "renaming .*partial to .*x.csv.pgp: permission denied"),
        # The server creates the file, then refuses every write: the upload is cut short.
        ("write", DeliveryUnavailable, "uploaded copy does not match \\(0 of 200000 bytes"),
    ],
)
def test_a_failure_mid_upload_leaves_no_partial_file(tmp_path, denied, error, match):
    with run_sshd(tmp_path / "sshd", sftp_options=f"-P {denied}") as server:
        path = local_file(tmp_path, os.urandom(200_000))
        with open_sftp(server.target("inbound")) as session:
            with pytest.raises(error, match=match):
                deliver_file(session, path, "x.csv.pgp")
            assert list_remote(session, "inbound") == []
        assert names(server.root, "inbound") == []  # neither the final nor the temporary name


def test_a_partial_file_left_by_a_crashed_attempt_is_replaced(sshd, remote_dir, tmp_path):
    stale = sshd.root / remote_dir / ".x.csv.pgp.partial"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an upl")
    path = local_file(tmp_path, os.urandom(10_000))

    with open_sftp(sshd.target(remote_dir)) as session:
        receipt = deliver_file(session, path, "x.csv.pgp")

    assert receipt.status == "delivered"
    assert names(sshd.root, remote_dir) == ["x.csv.pgp"]


def test_remove_remote_proves_the_file_is_gone(sshd, remote_dir, tmp_path):
    with open_sftp(sshd.target(remote_dir)) as session:
        receipt = deliver_file(session, local_file(tmp_path, b"ciphertext"), "x.csv.pgp")
        listed = list_remote(session, remote_dir)
        removed = remove_remote(session, receipt.remote_path)
        again = remove_remote(session, receipt.remote_path)
        after = list_remote(session, remote_dir)

    assert [(f.name, f.size) for f in listed] == [("x.csv.pgp", 10)]
    assert listed[0].mtime.tzinfo is not None
    assert (removed, again) == (True, False)
    assert after == []
    assert not (sshd.root / receipt.remote_path).exists()


def test_list_remote_of_a_missing_directory_is_empty(sshd, remote_dir):
    with open_sftp(sshd.target()) as session:
        assert list_remote(session, remote_dir) == []


def test_remove_remote_refuses_a_directory(sshd, remote_dir):
    (sshd.root / remote_dir).mkdir(parents=True)
    with open_sftp(sshd.target()) as session, pytest.raises(DeliveryRefused, match="not a regular file"):
        remove_remote(session, remote_dir)
    assert (sshd.root / remote_dir).is_dir()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_is_down_is_unavailable_naming_host_and_port(sshd):
    port = _free_port()  # nothing listens here

    with pytest.raises(DeliveryUnavailable, match=f"127.0.0.1:{port}") as caught:
        connect(sshd.target(port=port), timeout=5)
    assert isinstance(caught.value, RetriableError)


def test_a_server_that_stopped_is_unavailable(tmp_path):
    with run_sshd(tmp_path / "sshd") as server:
        target = server.target()
    # The context has stopped the server.
    with pytest.raises(DeliveryUnavailable, match=f"{server.host}:{server.port}"):
        connect(target, timeout=5)


def test_a_refused_login_is_delivery_refused(sshd):
    stranger = (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
        .decode()
    )

    with pytest.raises(DeliveryRefused, match=f"{sshd.host}:{sshd.port}: login as") as caught:
        connect(sshd.target(private_key=stranger))
    assert "PRIVATE KEY" not in str(caught.value)


def test_an_unreadable_private_key_is_a_config_error_without_quoting_it(sshd):
    # The session's run-time client key, cut short: still key-shaped, no longer parseable.
    lines = sshd.client_private_key.splitlines()
    broken = "\n".join([lines[0], lines[1][:40], lines[-1]]) + "\n"
    with pytest.raises(ConfigError, match="private_key is not") as caught:
        connect(sshd.target(private_key=broken))
    assert lines[1][:40] not in str(caught.value)


@pytest.mark.parametrize(
    "weak",
    [
        "Ciphers aes256-cbc,3des-cbc",
        "Ciphers aes256-ctr\nMACs hmac-sha1,hmac-md5",
        "KexAlgorithms diffie-hellman-group14-sha1,diffie-hellman-group1-sha1",
    ],
    ids=["cbc ciphers", "sha1/md5 macs", "sha1 kex"],
)
def test_a_server_offering_only_weak_algorithms_is_refused(tmp_path, weak):
    with (
        run_sshd(tmp_path / "sshd", extra_config=weak) as server,
        pytest.raises(DeliveryRefused, match="no algorithm in common"),
    ):
        connect(server.target())


def test_the_client_never_offers_weak_algorithms(sshd):
    with open_sftp(sshd.target()) as session:
        transport = session.client.get_transport()
        offered = {
            "ciphers": transport.preferred_ciphers,
            "macs": transport.preferred_macs,
            "kex": transport.preferred_kex,
            "keys": transport.preferred_keys,
            "pubkeys": transport.preferred_pubkeys,
        }
        assert transport.remote_cipher not in DISABLED_ALGORITHMS["ciphers"]
    for kind, names_ in offered.items():
        assert not set(names_) & set(DISABLED_ALGORITHMS[kind]), kind
        assert not any("cbc" in n or n.endswith("-sha1") or "md5" in n for n in names_), kind


@pytest.mark.parametrize("bad", ["../outside", "inbound/../../etc", "/etc/passwd", "a\nb", "a\x00b", "a\\..\\b"])
def test_a_remote_dir_that_could_escape_is_refused(sshd, bad):
    with pytest.raises(ConfigError) as caught:
        sshd.target(bad)
    assert repr(bad) in str(caught.value)


@pytest.mark.parametrize("bad", ["../x.pgp", "sub/x.pgp", ".hidden", "x\n.pgp", ""])
def test_a_remote_name_that_is_not_a_plain_file_name_is_refused(sshd, remote_dir, tmp_path, bad):
    with open_sftp(sshd.target(remote_dir)) as session, pytest.raises(ConfigError) as caught:
        deliver_file(session, local_file(tmp_path, b"x"), bad)
    assert repr(bad) in str(caught.value)
    assert not (sshd.root / remote_dir).exists()


def test_remove_remote_refuses_a_path_outside_the_home(sshd):
    with open_sftp(sshd.target()) as session, pytest.raises(ConfigError, match="'../x'"):
        remove_remote(session, "../x")


def test_the_target_never_shows_its_secrets(sshd):
    target = SftpTarget(
        host="sftp.example.invalid",
        port=2222,
        username="mash",
        host_key=sshd.host_key_line,
        password="hunter2-password",
        private_key=sshd.client_private_key,
        remote_dir="inbound/",
    )

    assert "hunter2" not in repr(target) and "PRIVATE" not in repr(target)
    assert target.remote_dir == "inbound"


def test_the_client_rejects_hosts_it_does_not_know(sshd):
    import paramiko

    with open_sftp(sshd.target()) as session:
        # Every offered key goes to the policy (known hosts stay empty, so paramiko asks it), and the
        # policy accepts only a pin: it is a RejectPolicy, and nothing was added to known hosts.
        assert isinstance(session.client._policy, paramiko.RejectPolicy)
        assert not isinstance(session.client._policy, paramiko.AutoAddPolicy | paramiko.WarningPolicy)
        assert session.client.get_host_keys().keys() == []
        assert session.pin is not None and session.pin.line == sshd.host_key_line


@pytest.mark.parametrize(
    ("field", "value"), [("host_key", "not a key"), ("host_key", "ssh-ed25519 !!!"), ("port", 0), ("host", "")]
)
def test_a_target_that_cannot_be_right_is_a_config_error(sshd, field, value):
    with pytest.raises(ConfigError, match=field):
        sshd.target(**{field: value})
