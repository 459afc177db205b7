"""Listing and removing delivered files on a recipient's server, for remote purge.

``remove_remote`` deletes one regular file and proves it is gone;
``discard_partial`` removes the temporary upload an attempt cut short left
beside it; ``list_remote`` lists what a remote directory holds. Paths are
checked like delivery's (relative to the login's home, never escaping it).
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from datetime import UTC, datetime

from transfers.delivery.session import SftpSession, sftp_call, stat_or_none
from transfers.delivery.target import check_path, temp_name
from transfers.errors import DeliveryRefused

__all__ = ["RemoteFile", "discard_partial", "list_remote", "remove_remote"]


@dataclass(frozen=True)
class RemoteFile:
    """A regular file in a remote directory."""

    name: str
    size: int
    mtime: datetime


def discard_partial(session: SftpSession, remote_path: str) -> bool:
    """Remove the temporary upload ``deliver_file`` would leave for ``remote_path``, if one is there.

    For remote purge: an upload cut short and never retried leaves its
    ``.<name>.partial`` beside the final name.

    Returns:
        ``True`` if one was there and is gone now.

    Raises:
        ConfigError: The path escapes the home directory.
        DeliveryRefused: It is not a regular file, or is still there after deletion.
        DeliveryUnavailable: The connection failed or stalled.
    """
    return remove_remote(session, temp_name(check_path(remote_path, "remote path")))


def remove_remote(session: SftpSession, remote_path: str) -> bool:
    """Delete one delivered file and prove it is gone.

    Args:
        session: From ``open_sftp``.
        remote_path: As in a ``Receipt`` (relative to the login's home).

    Returns:
        ``True`` if it was deleted now, ``False`` if it was already absent
        (for example, collected by the recipient).

    Raises:
        ConfigError: The path is absolute or escapes the home directory.
        DeliveryRefused: It is not a regular file, or it is still there after deletion.
        DeliveryUnavailable: The connection failed.
    """
    path = check_path(remote_path, "remote path")
    sftp = session.sftp
    with sftp_call(session, f"deleting {path}"):
        attrs = stat_or_none(sftp, path)
        if attrs is None:
            return False
        if not stat.S_ISREG(attrs.st_mode or 0):
            raise DeliveryRefused(f"sftp://{session.target.address}/{path}: not a regular file; not deleting")
        sftp.remove(path)
        if stat_or_none(sftp, path) is not None:
            raise DeliveryRefused(f"sftp://{session.target.address}/{path}: still present after deletion")
    return True


def list_remote(session: SftpSession, remote_dir: str) -> list[RemoteFile]:
    """The regular files in ``remote_dir`` (including our hidden ``.partial`` ones), by name.

    A directory that does not exist lists as empty.
    """
    path = check_path(remote_dir, "remote_dir")
    with sftp_call(session, f"listing {path}"):
        try:
            entries = session.sftp.listdir_attr(path)
        except FileNotFoundError:
            return []
    return sorted(
        (
            RemoteFile(e.filename, e.st_size or 0, datetime.fromtimestamp(e.st_mtime or 0, UTC))
            for e in entries
            if stat.S_ISREG(e.st_mode or 0)
        ),
        key=lambda f: f.name,
    )
