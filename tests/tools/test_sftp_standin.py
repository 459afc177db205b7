"""The demo's SFTP stand-in, checked with a strict paramiko client (pinned host key, one client key)."""

from __future__ import annotations

import base64
import io
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tools.sftp_standin import SftpStandIn, generate_ed25519_openssh


def _key() -> paramiko.Ed25519Key:
    return paramiko.Ed25519Key(file_obj=io.StringIO(generate_ed25519_openssh()))


def _public_line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()} test@client"


@pytest.fixture(scope="module")
def client_key() -> paramiko.Ed25519Key:
    return _key()


@pytest.fixture
def served(tmp_path: Path, client_key: paramiko.Ed25519Key) -> Iterator[tuple[SftpStandIn, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    with SftpStandIn(root, authorized_key=_public_line(client_key), host_key_path=tmp_path / "hostkey") as server:
        yield server, root


def _connect(server: SftpStandIn, key: paramiko.PKey) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    kind, blob = server.host_key_line.split()
    client.get_host_keys().add(
        f"[127.0.0.1]:{server.port}", kind, paramiko.PKey.from_type_string(kind, base64.b64decode(blob))
    )
    client.connect(
        "127.0.0.1", port=server.port, username="transfers", pkey=key, allow_agent=False, look_for_keys=False, timeout=5
    )
    return client


def test_round_trip_under_root(
    served: tuple[SftpStandIn, Path], client_key: paramiko.Ed25519Key, tmp_path: Path
) -> None:
    server, root = served
    assert server.host_key_line.startswith("ssh-ed25519 AAAA")
    assert stat.S_IMODE(os.stat(tmp_path / "hostkey").st_mode) == 0o600
    with _connect(server, client_key) as client, client.open_sftp() as sftp:
        sftp.mkdir("/inbound")
        sftp.putfo(io.BytesIO(b"ciphertext"), "/inbound/.part-x.pgp")
        assert sftp.stat("/inbound/.part-x.pgp").st_size == 10
        sftp.posix_rename("/inbound/.part-x.pgp", "/inbound/x.pgp")
        assert sftp.listdir("/inbound") == ["x.pgp"]
        assert (root / "inbound" / "x.pgp").read_bytes() == b"ciphertext"
        with sftp.open("inbound/x.pgp", "rb") as f:  # relative paths are relative to root too
            assert f.read() == b"ciphertext"
        sftp.remove("/inbound/x.pgp")
        assert sftp.listdir("/inbound") == []
        sftp.rmdir("/inbound")
    # many sessions one after another
    with _connect(server, client_key) as client, client.open_sftp() as sftp:
        assert sftp.listdir("/") == []


def test_wrong_client_key_and_passwords_refused(served: tuple[SftpStandIn, Path]) -> None:
    server, _ = served
    with pytest.raises(paramiko.AuthenticationException):
        _connect(server, _key())
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect(
            "127.0.0.1",
            port=server.port,
            username="transfers",
            password="secret",
            allow_agent=False,
            look_for_keys=False,
            timeout=5,
        )
    client.close()


def test_paths_escaping_root_refused(
    served: tuple[SftpStandIn, Path], client_key: paramiko.Ed25519Key, tmp_path: Path
) -> None:
    server, root = served
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with _connect(server, client_key) as client, client.open_sftp() as sftp:
        for path in ("../x", "/../x", "link/x", "/link/../../x"):
            with pytest.raises(PermissionError):
                sftp.putfo(io.BytesIO(b"data"), path, confirm=False)
        with pytest.raises(PermissionError):
            sftp.listdir("link")
        with pytest.raises(PermissionError):
            sftp.posix_rename("/link", "../moved")
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostkey", "outside", "root"]


def test_loopback_only(tmp_path: Path, client_key: paramiko.Ed25519Key) -> None:
    with pytest.raises(ValueError, match="loopback"):
        SftpStandIn(tmp_path, host="0.0.0.0", authorized_key=_public_line(client_key))


def test_asking_for_the_port_before_start_is_a_state_error(tmp_path: Path, client_key: paramiko.Ed25519Key) -> None:
    from transfers.errors import StateError

    server = SftpStandIn(tmp_path, authorized_key=_public_line(client_key), host_key_path=tmp_path / "hostkey")
    with pytest.raises(StateError, match=r"start\(\) first"):
        _ = server.port


def test_the_demo_outside_a_checkout_says_it_runs_from_one(monkeypatch):
    import sys

    from transfers.devkit import demo

    monkeypatch.setitem(sys.modules, "tools.sftp_standin", None)  # as if tools/ were not there

    with pytest.raises(SystemExit, match="the demo runs from a checkout of isp-transfers"):
        demo.sftp_standin()


def test_the_stand_in_is_not_in_the_wheel():
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "tools" not in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert not (Path(__file__).parents[2] / "transfers" / "devkit" / "sftp_server.py").exists()
