"""Local file plumbing every step shares: atomic writes, owner-only folders, file hashes.

A leaf module: it imports nothing from ``transfers``, so any step (and the ledger)
can use it without an upward import.

An atomic write goes to a temporary file in the same folder, under a name made
unique per attempt (``tempfile.mkstemp``), is flushed to disk, then renamed over
the target. A reader therefore sees the old file or the whole new one, never half
of one, and two attempts writing the same path at once (an Airflow retry racing
a zombie task) never share a temporary file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["AtomicFile", "atomic_file", "private_dir", "sha256_file", "sha256_size", "write_atomic"]

_CHUNK = 1 << 20


def private_dir(path: Path | str) -> Path:
    """Create ``path`` and any missing parents owner-only (0700); returns it.

    Parents that already exist keep their mode; ``path`` itself is made 0700 even if it existed.
    """
    path = Path(path)
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask; chmod is not
    return path


class AtomicFile:
    """A file written under a unique temporary name and renamed into place by :meth:`commit`.

    For writers that stream (a report written row by row while checks run); one-shot
    writers use :func:`write_atomic`. Until :meth:`commit`, ``path`` is untouched;
    :meth:`abort` removes the temporary file.
    """

    def __init__(self, path: Path | str, *, text: bool = False, mode: int = 0o600,
                 encoding: str | None = None, newline: str | None = None) -> None:
        self.path = Path(path)
        self.mode = mode
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")  # 0600
        self.tmp = Path(tmp)
        try:
            if text:
                self.fh: IO[Any] = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
            else:
                self.fh = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            self.tmp.unlink(missing_ok=True)
            raise

    def commit(self, *, sync_dir: bool = False) -> Path:
        """Flush to disk and rename over ``path``; ``sync_dir`` also makes the rename itself durable."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            if self.mode != 0o600:
                os.chmod(self.tmp, self.mode)
            os.replace(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        if sync_dir:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; ``path`` keeps what it had."""
        try:
            if not self.fh.closed:
                self.fh.close()
        except OSError:
            pass  # closing flushes what is buffered, which fails again on a full disk; the file goes anyway
        finally:
            self.tmp.unlink(missing_ok=True)


@contextmanager
def atomic_file(path: Path | str, *, text: bool = False, mode: int = 0o600,
                encoding: str | None = None, newline: str | None = None,
                sync_dir: bool = False) -> Iterator[IO[Any]]:
    """Write ``path`` through the yielded handle; it appears whole when the block ends, or not at all."""
    target = AtomicFile(path, text=text, mode=mode, encoding=encoding, newline=newline)
    try:
        yield target.fh
    except BaseException:
        target.abort()
        raise
    target.commit(sync_dir=sync_dir)


def write_atomic(path: Path | str, data: bytes | str, *, mode: int = 0o600, sync_dir: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (created ``mode``, 0600 unless told); str is written as UTF-8."""
    with atomic_file(path, mode=mode, sync_dir=sync_dir) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def sha256_size(path: Path | str) -> tuple[int, str]:
    """``(size, sha256 hex)`` of a file, read in chunks: files may be larger than memory."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """SHA-256 (hex) of a file's content."""
    return sha256_size(path)[1]
