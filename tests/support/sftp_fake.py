"""An in-memory SFTP server side implementing ``transfers.delivery.SftpOps``, for unit tests of the upload rules.

Like httpx's ``MockTransport``: no network, a dict of path -> bytes (paths relative to the login's home),
OpenSSH's answers (``FileNotFoundError``, a rename that fails if the new name is taken, ``"wx"`` refusing an
existing file), and switches for the faults delivery must survive.
"""

from __future__ import annotations

import io
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transfers.delivery import SftpSession, SftpTarget


def _parent(path: str) -> str:
    return posixpath.dirname(path) or "."


@dataclass
class FakeSftp:
    """``files`` and ``dirs`` are the server's state (the parents of ``files`` are added to ``dirs``);
    ``calls`` logs ``(method, path)`` in order.

    Faults: ``fail_rename`` (the server refuses the rename), ``drop_write`` (index of one ``write`` call that is
    silently lost, as paramiko's pipelined writes can be), ``deny_read`` (a write-only server: reads refused), ``size_skew`` (added to every file size ``stat``
    reports), ``on_rename`` (called just before a rename: a file can appear), ``copy_on_rename`` (the renamed
    file gets a new mtime, as on servers that copy).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=lambda: {"."})
    fail_rename: bool = False
    drop_write: int | None = None
    size_skew: int = 0
    on_rename: Callable[[], object] | None = None
    copy_on_rename: bool = False
    deny_read: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)
    mtimes: dict[str, int] = field(default_factory=dict)
    _writes: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        for path in self.files:
            while (path := _parent(path)) != ".":
                self.dirs.add(path)

    def _at(self, method: str, path: str) -> str:
        self.calls.append((method, path))
        return posixpath.normpath(path)

    def stat(self, path: str) -> paramiko.SFTPAttributes:
        path, attrs = self._at("stat", path), paramiko.SFTPAttributes()
        if path in self.dirs:
            attrs.st_mode, attrs.st_size = stat.S_IFDIR | 0o700, 0
        elif path in self.files:
            attrs.st_mode, attrs.st_size = stat.S_IFREG | 0o600, len(self.files[path]) + self.size_skew
        else:
            raise FileNotFoundError(2, "No such file", path)
        attrs.st_mtime, attrs.filename = self.mtimes.get(path, 1_700_000_000), posixpath.basename(path)
        return attrs

    def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]:
        path = self._at("listdir_attr", path)
        if path not in self.dirs:
            raise FileNotFoundError(2, "No such file", path)
        return [self.stat(p) for p in sorted(self.files.keys() | self.dirs) if p != "." and _parent(p) == path]

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        path = self._at("mkdir", path)
        if path in self.dirs or path in self.files or _parent(path) not in self.dirs:
            raise OSError(4, "Failure", path)
        self.dirs.add(path)

    def remove(self, path: str) -> None:
        path = self._at("remove", path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file", path)
        del self.files[path]

    def rename(self, oldpath: str, newpath: str) -> None:
        old, new = self._at("rename", oldpath), posixpath.normpath(newpath)
        if self.on_rename is not None:
            self.on_rename()
        if self.fail_rename or old not in self.files or new in self.files or new in self.dirs:
            raise OSError(4, "Failure", newpath)  # SSH_FXP_RENAME never replaces
        self.files[new] = self.files.pop(old)
        self.mtimes[new] = self.mtimes.pop(old, 1_700_000_000) + (1 if self.copy_on_rename else 0)

    def open(self, filename: str, mode: str = "r", bufsize: int = -1) -> _FakeFile:
        path = self._at(f"open:{mode}", filename)
        if "w" in mode:
            if ("x" in mode and path in self.files) or _parent(path) not in self.dirs:
                raise OSError(4, "Failure", filename)
            self.files[path] = b""
        elif path not in self.files:
            raise FileNotFoundError(2, "No such file", filename)
        return _FakeFile(self, path)


class _FakeFile(io.BytesIO):
    def __init__(self, server: FakeSftp, path: str) -> None:
        super().__init__(server.files[path])
        self._server, self._path = server, path

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._server._writes += 1
        if self._server._writes - 1 != self._server.drop_write:
            self._server.files[self._path] += bytes(data)
        return len(data)

    def prefetch(self) -> None: ...
    def set_pipelined(self, pipelined: bool = True) -> None: ...

    def stat(self) -> paramiko.SFTPAttributes:  # fstat on the open handle
        return self._server.stat(self._path)

    def read(self, size: int | None = -1) -> bytes:
        if self._server.deny_read:
            raise PermissionError(13, "Permission denied", self._path)
        return super().read(size)


def fake_session(sftp: FakeSftp | None = None, *, remote_dir: str = "inbound", upload: str = "atomic",
                 verify: str = "read-back") -> SftpSession:
    """A session on ``sftp`` (a new empty one by default) with no connection and no watchdog behind it."""
    host_key = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    target = SftpTarget(host="sftp.example", port=22, username="u", host_key=host_key, remote_dir=remote_dir,
                        upload=upload, verify=verify, recipient="partner-x")  # type: ignore[arg-type]
    return SftpSession(target, None, sftp if sftp is not None else FakeSftp())
