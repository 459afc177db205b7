"""A private OpenSSH ``sshd`` on 127.0.0.1 serving SFTP only, with keys made at run time.

The ``sshd`` fixture in ``tests/conftest.py`` starts one per test session; ``bench/bench_e2e.py`` starts
one for its runs, so this lives outside the conftest (a script cannot import a conftest without pytest's
fixtures coming along).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.parts import require_part

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> tuple[str, str]:
    """A fresh Ed25519 key with ``ssh-keygen``: (private key text, "ssh-ed25519 AAAA..." line)."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True, capture_output=True
    )
    public = " ".join(path.with_suffix(".pub").read_text().split()[:2])
    return path.read_text(), public


@dataclass
class SshServer:
    """A running private ``sshd`` serving SFTP only, for one user, from a local directory."""

    host: str
    port: int
    username: str
    host_key_line: str  # the pinned line, "ssh-ed25519 AAAA..."
    other_host_key_line: str  # a valid key this server does NOT have: for mismatch tests
    client_private_key: str  # OpenSSH private key text authorised to log in
    client_public_key_line: str
    root: Path  # the local directory behind the SFTP home (what the "partner" sees)
    workdir: Path  # config, keys and log
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        """sshd's log so far (``-e``: to stderr, captured to a file)."""
        return (self.workdir / "sshd.log").read_text(errors="replace")

    def target(self, remote_dir: str = ".", **overrides: Any):  # SftpTarget, imported lazily
        """An ``SftpTarget`` for this server, pinned to its real host key."""
        from transfers.delivery import SftpTarget

        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "host_key": self.host_key_line,
            "private_key": self.client_private_key,
            "remote_dir": remote_dir,
        }
        values.update(overrides)
        return SftpTarget(**values)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _sshd_binary() -> str | None:
    found = shutil.which("sshd")
    return found or next((c for c in SSHD_CANDIDATES if os.access(c, os.X_OK)), None)


@contextmanager
def run_sshd(workdir: Path, *, sftp_options: str = "", extra_config: str = "") -> Iterator[SshServer]:
    """Start a private ``sshd`` on 127.0.0.1 with its own config, keys and upload root.

    Args:
        workdir: A fresh directory for config, keys, log and the upload root.
        sftp_options: Extra ``internal-sftp`` flags, e.g. ``"-P rename,posix-rename"``
            to make a server that refuses renames.
        extra_config: Extra ``sshd_config`` lines (e.g. ``"Ciphers aes256-cbc"``).
    """
    sshd = _sshd_binary()
    require_part(
        "OpenSSH sshd",
        sshd is not None and shutil.which("ssh-keygen") is not None,
        "install it with: apt-get install -y openssh-server",
    )
    assert sshd is not None
    if os.geteuid() == 0:
        # Privilege separation needs this directory; a container has no init to make it.
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    root = workdir / "sftp-root"
    root.mkdir(exist_ok=True)
    _host_private, host_line = keygen(workdir / "host_ed25519")
    _other_private, other_line = keygen(workdir / "other_host_ed25519")
    client_private, client_line = keygen(workdir / "client_ed25519")
    (workdir / "authorized_keys").write_text(client_line + "\n")
    port = free_port()
    username = getpass.getuser()
    config = workdir / "sshd_config"
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {workdir / 'host_ed25519'}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
        f"AllowUsers {username}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",  # the tests may run as root, by key only
        "UsePAM no",
        "UseDNS no",
        "StrictModes no",  # the temp dir's parents are not ours to chmod
        "X11Forwarding no",
        "AllowTcpForwarding no",
        "AllowAgentForwarding no",
        "PermitTTY no",
        "LogLevel VERBOSE",
        # SFTP only, starting in the upload root, logging each request.
        f"Subsystem sftp internal-sftp -l VERBOSE -d {root} {sftp_options}".rstrip(),
        f"ForceCommand internal-sftp -l VERBOSE -d {root} {sftp_options}".rstrip(),
        *extra_config.splitlines(),
    ]
    config.write_text("\n".join(lines) + "\n")
    # OpenSSH 9.8+ penalises addresses after failed logins; our tests fail logins on purpose.
    penalties = config.read_text() + "PerSourcePenalties no\n"
    probe = workdir / "sshd_config.probe"
    probe.write_text(penalties)
    if subprocess.run([sshd, "-t", "-f", str(probe)], capture_output=True).returncode == 0:
        config.write_text(penalties)
    checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
    if checked.returncode != 0:
        raise RuntimeError(f"sshd rejected its test config {config}: {checked.stderr.strip()}")
    log = (workdir / "sshd.log").open("wb")
    process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT)
    server = SshServer(
        "127.0.0.1", port, username, host_line, other_line, client_private, client_line, root, workdir, process
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited ({process.returncode}) at start: {server.log.strip()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.settimeout(2)
                    if sock.recv(64).startswith(b"SSH-"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not accept connections on 127.0.0.1:{port}: {server.log.strip()}")
            time.sleep(0.05)
        yield server
    finally:
        server.stop()
        log.close()
