"""Host-key rotation against a real OpenSSH ``sshd``: two pins, either accepted; after ``until`` the old one refused.

The rotating server offers two host keys (its Ed25519 key and an ECDSA key added with ``HostKey``), so the
client must ask for the pinned type to be shown the pinned key. ``transfers hostkey show`` is compared with
what ``ssh-keygen -lf`` computes from the server's own public key files.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import run_sshd
from transfers.agreement.flow import Recipient
from transfers.cli import app
from transfers.connections import ConnInfo
from transfers.delivery import SftpTarget, open_sftp
from transfers.delivery.hostkeys import HostKeyPin
from transfers.errors import HostKeyMismatch

pytestmark = pytest.mark.integration

UNTIL = date(2026, 12, 31)


def public_line(path: Path) -> str:
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def ssh_keygen_l(path: Path) -> tuple[str, str]:
    """(bits, ``SHA256:...``) of a public key file, as ``ssh-keygen -lf`` computes them."""
    fields = subprocess.run(["ssh-keygen", "-lf", str(path.with_suffix(".pub"))], capture_output=True, text=True,
                            check=True).stdout.split()
    return fields[0], fields[1]


@pytest.fixture(scope="module")
def two_key_server(tmp_path_factory):
    """A server offering an Ed25519 host key (``host_ed25519``) and an ECDSA one (``host_ecdsa``)."""
    workdir = tmp_path_factory.mktemp("sshd-two-keys")
    ecdsa = workdir / "host_ecdsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-C", "", "-f", str(ecdsa)], check=True)
    with run_sshd(workdir, extra_config=f"HostKey {ecdsa}") as server:
        yield server


def target(server, *pins: HostKeyPin) -> SftpTarget:
    return server.target(f"t-{uuid.uuid4().hex[:8]}", host_key="", host_keys=pins)


def test_a_server_offering_two_keys_shows_the_pinned_type_when_only_that_one_is_pinned(two_key_server):
    ecdsa = HostKeyPin(public_line(two_key_server.workdir / "host_ecdsa"))

    with open_sftp(target(two_key_server, ecdsa)) as session:
        # paramiko prefers Ed25519: without asking for the pinned type the server would show that and be refused.
        assert session.pin == ecdsa
        assert session.client.get_transport().get_remote_server_key().get_name() == "ecdsa-sha2-nistp256"


@pytest.mark.parametrize("order", ["old first", "new first"])
def test_either_pinned_key_is_accepted_during_the_rotation(two_key_server, order):
    old = HostKeyPin(two_key_server.host_key_line, UNTIL)  # the key the server shows by default
    new = HostKeyPin(public_line(two_key_server.workdir / "host_ecdsa"))
    pins = (old, new) if order == "old first" else (new, old)

    with open_sftp(target(two_key_server, *pins), today=UNTIL) as session:
        assert session.pin in (old, new)


def test_after_until_a_server_still_on_the_old_key_is_refused(sshd, tmp_path):
    old = HostKeyPin(sshd.host_key_line, UNTIL)  # the server still has only this one
    new = HostKeyPin(sshd.other_host_key_line)  # the partner's announced new key, not installed yet
    pinned = target(sshd, old, new)

    with open_sftp(pinned, today=UNTIL) as session:  # on the until day itself: still the old key
        assert session.pin == old
    with pytest.raises(HostKeyMismatch) as caught, open_sftp(pinned, today=date(2027, 1, 1)):
        pass

    message = str(caught.value)
    _, fingerprint = ssh_keygen_l(sshd.workdir / "host_ed25519")
    assert f"SFTP server {sshd.host}:{sshd.port}: host key ssh-ed25519 {fingerprint} was pinned only until " \
           f"2026-12-31" in message
    assert f"expired pins: ssh-ed25519 {fingerprint} (until 2026-12-31)" in message
    _, new_fingerprint = ssh_keygen_l(sshd.workdir / "other_host_ed25519")
    assert f"the pinned one now is ssh-ed25519 {new_fingerprint}" in message


def test_two_pins_of_one_type_either_one_the_server_has_is_accepted(sshd):
    # paramiko's known hosts hold one key per type; two Ed25519 pins must both work all the same.
    for pins in [(HostKeyPin(sshd.other_host_key_line), HostKeyPin(sshd.host_key_line)),
                 (HostKeyPin(sshd.host_key_line), HostKeyPin(sshd.other_host_key_line))]:
        with open_sftp(target(sshd, *pins)) as session:
            assert session.pin == HostKeyPin(sshd.host_key_line)


def test_the_connections_host_keys_reach_the_session(sshd):
    conn = ConnInfo("syp_sftp", "sftp", host=sshd.host, port=sshd.port, login=sshd.username,
                    extra={"host_keys": [{"key": sshd.other_host_key_line, "until": "2026-12-31"},
                                         {"key": sshd.host_key_line}],
                           "private_key": sshd.client_private_key})
    recipient = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40)

    with open_sftp(SftpTarget.from_connection(conn, recipient), today=UNTIL) as session:
        assert session.pin is not None and session.pin.line == sshd.host_key_line


def test_hostkey_show_prints_each_offered_key_as_ssh_keygen_does_and_trusts_nothing(two_key_server, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    before = two_key_server.log

    result = CliRunner().invoke(app, ["hostkey", "show", f"{two_key_server.host}:{two_key_server.port}"])

    assert result.exit_code == 0, result.output
    name = f"[{two_key_server.host}]:{two_key_server.port}"
    for key_file, kind in (("host_ed25519", "ED25519"), ("host_ecdsa", "ECDSA")):
        bits, fingerprint = ssh_keygen_l(two_key_server.workdir / key_file)
        assert f"{bits} {fingerprint} {name} ({kind})" in result.output
        assert f"{name} {public_line(two_key_server.workdir / key_file)}" in result.output  # the known_hosts line
        assert f'{{"key": "{public_line(two_key_server.workdir / key_file)}"}}' in result.output
    assert "Nothing was trusted or stored, and no login was tried" in result.output
    logged = two_key_server.log[len(before):]
    assert "Accepted" not in logged and "Failed" not in logged and "Postponed" not in logged  # no login attempt


def test_hostkey_show_of_a_server_that_is_down_is_a_temporary_failure():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused

        result = CliRunner().invoke(app, ["hostkey", "show", f"127.0.0.1:{port}", "--timeout", "5"])

    assert result.exit_code == 75, result.output
    assert f"SFTP server 127.0.0.1:{port}: cannot read its host keys" in result.output


def test_hostkey_show_of_a_server_with_only_weak_ciphers_says_so_rather_than_no_keys(tmp_path):
    with run_sshd(tmp_path / "sshd", extra_config="Ciphers aes256-cbc") as server:
        result = CliRunner().invoke(app, ["hostkey", "show", f"{server.host}:{server.port}", "--timeout", "5"])

    assert result.exit_code == 75, result.output
    assert "IncompatiblePeer" in result.output and "offered no host key" not in result.output
