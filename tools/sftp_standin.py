"""A small local stand-in for a partner's SFTP server, for the demo only (not in the wheel).

The README's demo must run without root or Docker, so it cannot start OpenSSH ``sshd``; this
serves SFTP with paramiko instead. It is deliberately narrow: loopback only, one authorised
public key, no passwords, no shell or exec, and every path confined to one directory. The
delivery tests use a real sshd, never this; it lives outside ``transfers/`` so that no deployment
ever installs an SFTP server.
"""

from __future__ import annotations

import argparse
import base64
import functools
import io
import ipaddress
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paramiko.sftp import SFTP_FAILURE, SFTP_OK, SFTP_PERMISSION_DENIED

from transfers.errors import StateError

__all__ = ["SftpStandIn", "generate_ed25519_openssh", "main"]


def generate_ed25519_openssh() -> str:
    """A new Ed25519 private key in OpenSSH format (paramiko can load but not generate these)."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def _load_or_create_host_key(path: Path | None) -> paramiko.Ed25519Key:
    """Load the host key at ``path``; create it there (0600) if missing, or keep it in memory."""
    if path is not None and path.exists():
        return paramiko.Ed25519Key(filename=str(path))
    text = generate_ed25519_openssh()
    if path is not None:
        # O_EXCL + 0600 at creation: the private key is never readable by others, not even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return paramiko.Ed25519Key(filename=str(path))
    return paramiko.Ed25519Key(file_obj=io.StringIO(text))


class _Auth(paramiko.ServerInterface):
    """Public key auth for exactly one key; sessions may only ask for the sftp subsystem."""

    def __init__(self, key_type: str, key_blob: bytes) -> None:
        self._type, self._blob = key_type, key_blob

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        ok = key.get_name() == self._type and key.asbytes() == self._blob
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def stat(self) -> paramiko.SFTPAttributes | int:
        try:
            return paramiko.SFTPAttributes.from_stat(os.fstat(self.filehandle.fileno()))
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        return _set_attrs(self.filename, attr)


def _set_attrs(path: str, attr: paramiko.SFTPAttributes) -> int:
    """Apply mode, times and size; ownership is skipped (we are not root)."""
    try:
        if attr._flags & attr.FLAG_PERMISSIONS:
            os.chmod(path, attr.st_mode & 0o7777)
        if attr._flags & attr.FLAG_AMTIME:
            os.utime(path, (attr.st_atime, attr.st_mtime))
        if attr._flags & attr.FLAG_SIZE:
            os.truncate(path, attr.st_size)
    except OSError as e:
        return paramiko.SFTPServer.convert_errno(e.errno)
    return SFTP_OK


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn OSError into an SFTP status code, as paramiko's server expects."""

    @functools.wraps(fn)
    def wrapped(self: _RootedSFTP, *args: Any) -> Any:
        try:
            return fn(self, *args)
        except PermissionError:
            return SFTP_PERMISSION_DENIED
        except OSError as e:
            return paramiko.SFTPServer.convert_errno(e.errno)

    return wrapped


class _RootedSFTP(paramiko.SFTPServerInterface):
    """Filesystem operations confined to ``root``; "/" on the wire is ``root`` on disk.

    Checks resolve the path and then act on it (not race-free against someone swapping symlinks
    inside root concurrently); that is fine for a demo whose root only this process writes to.
    """

    def __init__(self, server: paramiko.ServerInterface, root: Path) -> None:
        super().__init__(server)
        self._root = root

    def _local(self, path: str, *, follow: bool = True) -> str:
        """The real path for ``path``, or PermissionError if it (or a symlink in it) leaves root."""
        candidate = self._root / path.lstrip("/")
        if follow or candidate.name in ("", ".."):
            real = candidate.resolve()
        else:  # act on a final symlink itself (lstat, remove, rename), but never via an outside parent
            real = candidate.parent.resolve() / candidate.name
        if not real.is_relative_to(self._root):
            raise PermissionError(f"outside the served root: {path}")
        return str(real)

    @_errors
    def open(self, path: str, flags: int, attr: paramiko.SFTPAttributes) -> _Handle | int:
        local = self._local(path)
        mode = attr.st_mode & 0o777 if attr._flags & attr.FLAG_PERMISSIONS else 0o600
        # O_NOFOLLOW: a symlink swapped in after _local resolved it is refused, not followed.
        fd = os.open(local, flags | os.O_NOFOLLOW, mode)
        writing, reading = flags & (os.O_WRONLY | os.O_RDWR), not flags & os.O_WRONLY
        if not writing:
            fmode = "rb"
        elif flags & os.O_APPEND:
            fmode = "a+b" if reading else "ab"
        else:
            fmode = "r+b" if reading else "wb"  # the fd is already created/truncated as asked
        f = os.fdopen(fd, fmode)
        handle = _Handle(flags)
        handle.filename = local
        handle.filehandle = f
        if writing:
            handle.writefile = f
        if reading:
            handle.readfile = f
        return handle

    @_errors
    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        local = self._local(path)
        out = []
        for name in sorted(os.listdir(local)):
            attrs = paramiko.SFTPAttributes.from_stat(os.lstat(os.path.join(local, name)))
            attrs.filename = name
            out.append(attrs)
        return out

    @_errors
    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.stat(self._local(path)))

    @_errors
    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.lstat(self._local(path, follow=False)))

    @_errors
    def remove(self, path: str) -> int:
        os.remove(self._local(path, follow=False))
        return SFTP_OK

    @_errors
    def rename(self, oldpath: str, newpath: str) -> int:
        old, new = self._local(oldpath, follow=False), self._local(newpath, follow=False)
        # Plain SFTP rename must not overwrite (as OpenSSH); posix_rename is the one that replaces.
        if os.path.lexists(new):
            return SFTP_FAILURE
        os.rename(old, new)
        return SFTP_OK

    @_errors
    def posix_rename(self, oldpath: str, newpath: str) -> int:
        os.replace(self._local(oldpath, follow=False), self._local(newpath, follow=False))
        return SFTP_OK

    @_errors
    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        mode = attr.st_mode & 0o777 if attr._flags & attr.FLAG_PERMISSIONS else 0o700
        os.mkdir(self._local(path, follow=False), mode)
        return SFTP_OK

    @_errors
    def rmdir(self, path: str) -> int:
        os.rmdir(self._local(path, follow=False))
        return SFTP_OK

    @_errors
    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return _set_attrs(self._local(path), attr)


class SftpStandIn:
    """An SFTP server on loopback serving ``root`` to the holder of ``authorized_key``."""

    def __init__(
        self,
        root: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        authorized_key: str,
        host_key_path: Path | None = None,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the stand-in only listens on loopback, not {host!r}")
        parts = authorized_key.split()
        if len(parts) < 2:
            raise ValueError("authorized_key must be one OpenSSH public key line: 'ssh-ed25519 AAAA...'")
        self._key_type, self._key_blob = parts[0], base64.b64decode(parts[1])
        self._root = Path(root).resolve(strict=True)
        self._host, self._port = host, port
        self._host_key = _load_or_create_host_key(host_key_path)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        if self._sock is None:
            raise StateError("the SFTP stand-in is not started: call start() first")
        return self._sock.getsockname()[1]

    @property
    def host_key_line(self) -> str:
        """The line a client pins, e.g. ``ssh-ed25519 AAAA...``."""
        return f"{self._host_key.get_name()} {self._host_key.get_base64()}"

    def start(self) -> SftpStandIn:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        sock.listen(16)
        sock.settimeout(0.2)  # lets the accept loop notice stop() promptly
        self._sock = sock
        self._thread = threading.Thread(target=self._accept_loop, name="sftp-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            transports = list(self._transports)
        for t in transports:
            t.close()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> SftpStandIn:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        """One connection: handshake, then paramiko's own thread runs the session until it closes."""
        try:
            transport = paramiko.Transport(conn)
        except (paramiko.SSHException, OSError):
            conn.close()
            return
        transport.add_server_key(self._host_key)
        transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _RootedSFTP, self._root)
        with self._lock:
            self._transports.add(transport)
        try:
            if self._stopping.is_set():  # accepted just as stop() ran: it may have missed this one
                return
            transport.start_server(server=_Auth(self._key_type, self._key_blob))
            transport.join()
        except (paramiko.SSHException, EOFError, OSError):
            pass  # a client that fails the handshake just goes away
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)


def main(argv: list[str] | None = None) -> None:
    """Run until SIGINT/SIGTERM: ``python -m tools.sftp_standin --root DIR ...``."""
    p = argparse.ArgumentParser(description="Local SFTP stand-in for the demo (loopback only).")
    p.add_argument("--root", type=Path, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--authorized-key-file", type=Path, required=True)
    p.add_argument("--host-key-file", type=Path, default=None)
    args = p.parse_args(argv)
    key_line = args.authorized_key_file.read_text().strip().splitlines()[0]
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with SftpStandIn(
        args.root, host=args.host, port=args.port, authorized_key=key_line, host_key_path=args.host_key_file
    ) as server:
        print(f"port {server.port}", flush=True)
        print(f"host_key {server.host_key_line}", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
