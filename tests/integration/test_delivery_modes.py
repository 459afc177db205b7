"""Upload and verify modes against real OpenSSH servers behaving as partners' servers do.

Each server is a private ``sshd`` whose ``internal-sftp`` refuses requests with ``-P`` (request names as in
``man sftp-server``: ``read``, ``rename``, ``posix-rename``): one without the ``posix-rename@openssh.com``
extension, a write-only one (reads refused: the read-back cannot work), one that refuses renames, and an
inbox that takes each file away as soon as it is closed (the shared ``sshd`` plus a collector that moves
every file no process holds open, as MOVEit-style inboxes do). Each delivery lands once under its final
name, or fails with an error naming the host and the mode to set, and nothing is left half-written.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SshServer, run_sshd
from transfers.delivery import deliver_file, open_sftp
from transfers.delivery.probe import probe_remote_dir
from transfers.errors import DeliveryRefused

pytestmark = pytest.mark.integration

PARTNER = "south-yorkshire-police"


def names(path: Path) -> list[str]:
    """Everything in ``path``, hidden files included."""
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def deliver(server: SshServer, remote_dir: str, local: Path, upload: str, verify: str):
    target = server.target(remote_dir, upload=upload, verify=verify, recipient=PARTNER)
    with open_sftp(target) as session:
        return deliver_file(session, local, local.name)


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(os.urandom(150_000))  # several SFTP packets
    return path


@pytest.fixture
def remote_dir() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/inbound"


@pytest.fixture(scope="module")
def no_posix_rename(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with run_sshd(tmp_path_factory.mktemp("no-posix-rename"), sftp_options="-P posix-rename") as server:
        yield server


@pytest.fixture(scope="module")
def write_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with run_sshd(tmp_path_factory.mktemp("write-only"), sftp_options="-P read") as server:
        yield server


@pytest.fixture(scope="module")
def no_rename(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with run_sshd(tmp_path_factory.mktemp("no-rename"), sftp_options="-P rename,posix-rename") as server:
        yield server


@pytest.mark.parametrize("upload", ["atomic", "rename"])
def test_a_server_without_posix_rename_takes_a_renamed_upload(no_posix_rename, remote_dir, local, upload):
    receipt = deliver(no_posix_rename, remote_dir, local, upload, "read-back")

    assert receipt.status == "delivered"
    assert names(no_posix_rename.root / remote_dir) == ["x.csv.pgp"]
    assert (no_posix_rename.root / remote_dir / "x.csv.pgp").read_bytes() == local.read_bytes()


def test_the_server_without_posix_rename_really_refuses_it(no_posix_rename, remote_dir):
    # The fixture's own proof: the extension request is refused, so the deliveries above never needed it.
    (no_posix_rename.root / remote_dir).mkdir(parents=True)
    (no_posix_rename.root / remote_dir / "a").write_bytes(b"a")
    with open_sftp(no_posix_rename.target()) as session, pytest.raises(PermissionError):
        session.sftp.posix_rename(f"{remote_dir}/a", f"{remote_dir}/b")


def test_a_write_only_server_refuses_the_read_back_naming_the_mode_to_set(write_only, remote_dir, local):
    with pytest.raises(DeliveryRefused) as caught:
        deliver(write_only, remote_dir, local, "atomic", "read-back")

    message = str(caught.value)
    assert f"127.0.0.1:{write_only.port}" in message
    assert f"set verify: size (or receipt) for {PARTNER}" in message
    assert names(write_only.root / remote_dir) == []  # our temporary upload removed, nothing renamed


@pytest.mark.parametrize(("upload", "verify"), [("atomic", "size"), ("rename", "receipt"), ("direct", "size"),
                                                ("direct", "receipt")])
def test_a_write_only_server_takes_a_delivery_checked_without_reading(write_only, remote_dir, local, upload, verify):
    receipt = deliver(write_only, remote_dir, local, upload, verify)

    assert receipt.status == "delivered"
    assert names(write_only.root / remote_dir) == ["x.csv.pgp"]
    assert (write_only.root / remote_dir / "x.csv.pgp").read_bytes() == local.read_bytes()
    # A re-run finds it by its size (no read access) and sends nothing.
    assert deliver(write_only, remote_dir, local, upload, verify).status == "reconciled"
    assert names(write_only.root / remote_dir) == ["x.csv.pgp"]


def test_a_server_that_refuses_renames_names_upload_direct(no_rename, remote_dir, local):
    with pytest.raises(DeliveryRefused) as caught:
        deliver(no_rename, remote_dir, local, "rename", "read-back")

    message = str(caught.value)
    assert f"127.0.0.1:{no_rename.port}" in message
    assert f"set upload: direct (with verify: size or receipt) for {PARTNER}" in message
    assert names(no_rename.root / remote_dir) == []


def test_a_server_that_refuses_renames_takes_a_direct_upload(no_rename, remote_dir, local):
    receipt = deliver(no_rename, remote_dir, local, "direct", "size")

    assert receipt.status == "delivered"
    assert names(no_rename.root / remote_dir) == ["x.csv.pgp"]
    assert (no_rename.root / remote_dir / "x.csv.pgp").read_bytes() == local.read_bytes()


def _held_open(path: Path) -> bool:
    """Whether any process has ``path`` open (tests run as root, so every /proc/*/fd is readable)."""
    target = str(path)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                return True
        except OSError:
            continue
    return False


class TakeAwayInbox:
    """Moves every file out of ``inbox`` into ``collected`` once no process holds it open (on close)."""

    def __init__(self, inbox: Path, collected: Path) -> None:
        self.inbox, self.collected, self._stop = inbox, collected, threading.Event()
        inbox.mkdir(parents=True)
        collected.mkdir(parents=True)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            for path in list(self.inbox.iterdir()):
                if path.is_file() and not _held_open(path):
                    path.rename(self.collected / path.name)

    def __enter__(self) -> TakeAwayInbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@pytest.fixture
def take_away(sshd, remote_dir, tmp_path) -> Iterator[TakeAwayInbox]:
    if os.geteuid() != 0:
        pytest.skip("the collector reads every process's open files in /proc: needs root, as the test image runs")
    with TakeAwayInbox(sshd.root / remote_dir, tmp_path / "collected") as inbox:
        yield inbox


class _CollectedOnClose:
    """The real SFTP client, except that closing an uploaded file waits until the collector has taken it.

    Only the timing is staged (an inbox such as MOVEit takes the file before it answers the close): the
    file is written by the real ``sshd`` and taken by the collector above.
    """

    def __init__(self, sftp, root: Path) -> None:
        self._sftp, self._root = sftp, root

    def __getattr__(self, name: str):
        return getattr(self._sftp, name)

    def open(self, path: str, mode: str = "r", bufsize: int = -1):
        handle, local = self._sftp.open(path, mode, bufsize), self._root / path
        if "w" not in mode:
            return handle
        close = handle.close

        def close_then_collected() -> None:
            close()
            deadline = time.monotonic() + 5
            while local.exists() and time.monotonic() < deadline:
                time.sleep(0.005)

        handle.close = close_then_collected
        return handle


def deliver_to_inbox(server: SshServer, remote_dir: str, local: Path, upload: str, verify: str):
    target = server.target(remote_dir, upload=upload, verify=verify, recipient=PARTNER)
    with open_sftp(target) as session:
        session.sftp = _CollectedOnClose(session.sftp, server.root)
        return deliver_file(session, local, local.name)


def test_an_inbox_that_takes_files_away_on_close_refuses_a_renamed_upload_naming_upload_direct(
        sshd, remote_dir, local, take_away):
    with pytest.raises(DeliveryRefused) as caught:
        deliver_to_inbox(sshd, remote_dir, local, "atomic", "read-back")

    message = str(caught.value)
    assert f"127.0.0.1:{sshd.port}" in message and "takes files away on close" in message
    assert f"set upload: direct (with verify: size or receipt) for {PARTNER}" in message
    assert names(take_away.collected) == [".x.csv.pgp.partial"]  # the inbox took it: nothing of ours to remove


@pytest.mark.parametrize("verify", ["size", "receipt"])
def test_an_inbox_that_takes_files_away_on_close_takes_a_direct_upload_once(sshd, remote_dir, local, take_away,
                                                                            verify):
    receipt = deliver_to_inbox(sshd, remote_dir, local, "direct", verify)

    assert receipt.status == "delivered"
    assert names(take_away.collected) == ["x.csv.pgp"]
    assert (take_away.collected / "x.csv.pgp").read_bytes() == local.read_bytes()


# The preflight probe (transfers validate --connect) finds the same mismatches before the first night.


def test_preflight_on_a_write_only_server_names_the_verify_mode(write_only, remote_dir):
    with open_sftp(write_only.target(remote_dir, recipient=PARTNER)) as session, \
            pytest.raises(DeliveryRefused, match=f"set verify: size \\(or receipt\\) for {PARTNER}"):
        probe_remote_dir(session)
    with open_sftp(write_only.target(remote_dir, verify="size", recipient=PARTNER)) as session:
        assert "written, renamed and removed" in probe_remote_dir(session)
    assert not [p for p in write_only.root.rglob("*") if p.name.startswith(".transfers-preflight")]


def test_preflight_on_a_server_that_refuses_renames_names_upload_direct(no_rename, remote_dir):
    with open_sftp(no_rename.target(remote_dir, recipient=PARTNER)) as session, \
            pytest.raises(DeliveryRefused, match=f"set upload: direct \\(with verify: size or receipt\\) for {PARTNER}"):
        probe_remote_dir(session)
    assert not [p for p in no_rename.root.rglob("*") if p.name.startswith(".transfers-preflight")]
