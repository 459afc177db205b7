"""Uploading one file so the recipient sees it whole or not at all, and never over a different file.

``deliver_file`` uploads under a hidden temporary name (removing one a cut
attempt left), checks size and SHA-256 read back from the server, then renames
with a rename that fails if the name is taken, and checks what landed. A re-run
that finds the identical file already there reports it ``"reconciled"`` instead
of sending it again. Whatever fails, the temporary file is removed.

The recipient's ``upload`` and ``verify`` modes (``SftpTarget``) adapt this to
servers that are not a plain OpenSSH: ``direct`` writes the final name (inboxes
that take a file away on close), ``size`` and ``receipt`` check without read
access. A refusal one of those modes would avoid names the mode to set.

Errors: ``DeliveryConflict`` (a different file under the final name: terminal,
nothing is overwritten), ``DeliveryRefused``, ``DeliveryUnavailable`` (the
upload did not verify, or the connection failed: retriable). The rules use only
the ``SftpOps`` calls of the session, so unit tests run them over a fake.
"""

from __future__ import annotations

import hashlib
import posixpath
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import paramiko

from transfers.delivery.readahead import read_chunks
from transfers.delivery.session import SftpFile, SftpSession, sftp_call, stat_or_none
from transfers.delivery.target import check_path, temp_name
from transfers.errors import DeliveryConflict, DeliveryRefused, DeliveryUnavailable
from transfers.files import sha256_size

__all__ = ["Receipt", "deliver_file"]

_CHUNK = 32 * 1024  # paramiko's SFTP packet payload size


@dataclass(frozen=True)
class Receipt:
    """What ``deliver_file`` left on the server."""

    remote_path: str  # relative to the login's home, e.g. "inbound/mash/x.csv.pgp"
    size: int
    sha256: str
    status: Literal["delivered", "reconciled"]


def _makedirs(session: SftpSession, path: str) -> None:
    sftp, current = session.sftp, ""
    for part in [] if path == "." else path.split("/"):
        current = f"{current}/{part}" if current else part
        attrs = stat_or_none(sftp, current)
        if attrs is None:
            try:
                sftp.mkdir(current)
            except OSError:
                if stat_or_none(sftp, current) is None:  # not made by a concurrent attempt either
                    raise
                continue
        elif not stat.S_ISDIR(attrs.st_mode or 0):
            raise DeliveryRefused(f"sftp://{session.target.address}/{current}: exists and is not a directory")


def _remote_digest(session: SftpSession, path: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with session.sftp.open(path, "rb") as fh:
        for chunk in read_chunks(fh):  # many reads in flight: one round trip per window, not per chunk
            digest.update(chunk)
            size += len(chunk)
            session.progress()
    return size, digest.hexdigest()


def deliver_file(session: SftpSession, local_path: Path, remote_name: str) -> Receipt:
    """Upload one file into the target's ``remote_dir`` so the recipient sees it whole or not at all.

    How depends on the target's ``upload`` and ``verify`` modes (from the agreement's recipient).
    If a file already sits under ``remote_name`` with the same size (and, with
    ``verify: read-back``, the same SHA-256) (a re-run after a crash), nothing is
    sent and the receipt says ``"reconciled"``.

    ``atomic`` and ``rename``: the file goes to ``.{remote_name}.partial``
    (replacing one a cut attempt left), is checked, and renamed to ``remote_name``
    with a plain SFTP rename, which fails if that name is taken
    (``posix-rename@openssh.com`` would replace it, so it is never used); the file
    under the final name is then checked to be the one renamed. The two modes send
    the same requests: ``rename`` records that the server lacks the extension.
    ``direct``: the final name is created (never over an existing file) and
    written; with ``verify: size`` its size is checked on the open handle, before
    the close that may hand it to the recipient.

    Checks: ``read-back`` reads the upload back and compares size and SHA-256;
    ``size`` compares the size the server reports; ``receipt`` checks nothing on
    the server (the recipient's signed receipt, verified by ``await_receipt``, is
    the proof). Any failure removes the temporary file, or in ``direct`` mode the
    partly written final file, where the server allows it.

    Args:
        session: From ``open_sftp``.
        local_path: The (encrypted) file to send.
        remote_name: Final file name, a plain name (no directory).

    Returns:
        The remote path, size, SHA-256 and status.

    Raises:
        ConfigError: ``remote_name`` is not a plain file name.
        DeliveryConflict: A different file already sits under ``remote_name``, or appeared there
            during the upload (it is left alone).
        DeliveryRefused: The server refused a directory or file operation; where a mode would
            avoid it (no read access, no rename) the message names the mode to set.
        DeliveryUnavailable: The connection failed or stalled, or the upload did not verify.
    """
    name = check_path(remote_name, "remote file name", plain_name=True)
    directory = session.target.remote_dir
    final = name if directory == "." else posixpath.join(directory, name)
    size, sha256 = sha256_size(Path(local_path))
    sftp = session.sftp
    where = f"sftp://{session.target.address}/{final}"

    with sftp_call(session, f"preparing {directory!r}"):
        _makedirs(session, directory)
        existing = stat_or_none(sftp, final)
    if existing is not None:
        with _hinted(session, "read"), sftp_call(session, f"checking the existing {final}"):
            same = (
                stat.S_ISREG(existing.st_mode or 0)
                and existing.st_size == size
                # Without read access the size is all there is; the receipt's hashes settle it later.
                and (session.target.verify != "read-back" or _remote_digest(session, final) == (size, sha256))
            )
        if same:
            if session.target.upload != "direct":
                _discard(session, temp_name(final))  # debris of an attempt cut short before the one that landed
            return Receipt(final, size, sha256, "reconciled")
        raise DeliveryConflict(
            f"{where}: a different file already sits under this name ({existing.st_size} bytes there, ours "
            f"{size} bytes, sha256 {sha256[:16]}...); not overwriting. Ask the recipient whether it was "
            "collected, and remove it only once it is accounted for"
        )
    if session.target.upload == "direct":
        _upload_direct(session, Path(local_path), final, (size, sha256))
    else:
        _upload_and_rename(session, Path(local_path), final, (size, sha256))
    return Receipt(final, size, sha256, "delivered")


def _upload_and_rename(session: SftpSession, local_path: Path, final: str, digest: tuple[int, str]) -> None:
    sftp, temp, where = session.sftp, temp_name(final), f"sftp://{session.target.address}/{final}"
    with local_path.open("rb") as local:  # opened first: a local error is not the server's
        try:
            with sftp_call(session, f"uploading {temp}"):
                if stat_or_none(sftp, temp) is not None:
                    sftp.remove(temp)  # left by an attempt that was cut short; ours by its name
                with sftp.open(temp, "wx") as remote:
                    _write(session, local, remote)
                if stat_or_none(sftp, temp) is None:
                    raise _taken_away(session, temp, final)
            _check_upload(session, temp, final, digest)
            with _hinted(session, "rename"), sftp_call(session, f"renaming {temp} to {final}"):
                uploaded = sftp.stat(temp)
                if stat_or_none(sftp, final) is not None:
                    raise DeliveryConflict(
                        f"{where}: a file appeared under this name during the upload; not overwriting it. "
                        "Ask the recipient what it is before delivering again"
                    )
                try:
                    # SSH_FXP_RENAME: OpenSSH links the new name, which fails if it is taken,
                    # so a file that appeared since the check above is never replaced.
                    sftp.rename(temp, final)
                except PermissionError:
                    raise
                except OSError:
                    if stat_or_none(sftp, final) is None:
                        raise
                    raise DeliveryConflict(
                        f"{where}: a file appeared under this name during the upload; not overwriting it. "
                        "Ask the recipient what it is before delivering again"
                    ) from None
            with _hinted(session, "read"), sftp_call(session, f"checking {final} after the rename"):
                if not _is_ours(session, final, uploaded, digest):
                    raise DeliveryConflict(
                        f"{where}: after the rename the file under this name is not the one uploaded "
                        f"(ours {digest[0]} bytes, sha256 {digest[1][:16]}...); ask the recipient what replaced it"
                    )
        except DeliveryUnavailable:
            if _vanished(session, temp, final):  # taken away between two of our requests
                raise _taken_away(session, temp, final) from None
            _discard(session, temp)
            raise
        except BaseException:
            # The recipient must never see a partial file, whatever went wrong.
            _discard(session, temp)
            raise


def _vanished(session: SftpSession, temp: str, final: str) -> bool:
    try:
        return stat_or_none(session.sftp, temp) is None and stat_or_none(session.sftp, final) is None
    except (OSError, EOFError, paramiko.SSHException):
        return False  # the connection is down: the failure was not the server taking the file


def _taken_away(session: SftpSession, temp: str, final: str) -> DeliveryRefused:
    target = session.target
    return DeliveryRefused(
        f"sftp://{target.address}/{final}: the temporary upload {posixpath.basename(temp)} was taken away once "
        f"closed; the server takes files away on close (upload: {target.upload}): set upload: direct (with "
        f"verify: size or receipt) for {target.recipient} in the agreement"
    )


def _upload_direct(session: SftpSession, local_path: Path, final: str, digest: tuple[int, str]) -> None:
    """Write ``final`` itself: for inboxes that take a file away on close, so nothing is read back."""
    sftp, created = session.sftp, False
    with local_path.open("rb") as local:
        try:
            with sftp_call(session, f"uploading {final}"):
                try:
                    # "x": never over a file that appeared since the check; ours is removed on failure.
                    remote = sftp.open(final, "wx")
                except PermissionError:
                    raise
                except OSError:
                    if stat_or_none(sftp, final) is None:
                        raise
                    raise DeliveryConflict(
                        f"sftp://{session.target.address}/{final}: a file appeared under this name before the "
                        "upload; not overwriting it. Ask the recipient what it is before delivering again"
                    ) from None
                created = True
                with remote:
                    _write(session, local, remote)
                    if session.target.verify == "size":
                        # Before the close: an inbox that takes the file away on close leaves nothing to stat.
                        remote.flush()
                        _check_size(session, final, remote.stat().st_size, digest[0])
        except BaseException:
            if created:
                _discard(session, final)  # ours, written partly or not verified: never left for the recipient
            raise


def _write(session: SftpSession, local: BinaryIO, remote: SftpFile) -> None:
    # Pipelined writes are fast over a WAN, but paramiko does not report a failed
    # pipelined write at all: the check after the upload is what catches it.
    remote.set_pipelined(True)
    while chunk := local.read(_CHUNK):
        remote.write(chunk)
        session.progress()


def _check_upload(session: SftpSession, temp: str, final: str, digest: tuple[int, str]) -> None:
    """The uploaded temporary file checked as the target's ``verify`` says (nothing for ``receipt``)."""
    mode = session.target.verify
    if mode == "size":
        with sftp_call(session, f"checking the size of {temp}"):
            _check_size(session, final, session.sftp.stat(temp).st_size, digest[0])
    elif mode == "read-back":
        with _hinted(session, "read"), sftp_call(session, f"reading back {temp}"):
            # put(confirm=True) would compare sizes only; compare the bytes.
            sent = _remote_digest(session, temp)
        if sent != digest:
            raise DeliveryUnavailable(
                f"sftp://{session.target.address}/{final}: the uploaded copy does not match ({sent[0]} of "
                f"{digest[0]} bytes{', different content' if sent[0] == digest[0] else ''}); "
                "a later attempt may succeed"
            )


def _check_size(session: SftpSession, final: str, reported: int | None, size: int) -> None:
    if reported != size:
        raise DeliveryUnavailable(
            f"sftp://{session.target.address}/{final}: the server reports {reported} of {size} bytes uploaded; "
            "a later attempt may succeed"
        )


@contextmanager
def _hinted(session: SftpSession, need: Literal["read", "rename"]) -> Iterator[None]:
    """Name the mode to choose when the server refuses what the current one needs (reading, renaming)."""
    try:
        yield
    except DeliveryRefused as exc:
        target = session.target
        change = ("verify: size (or receipt)" if need == "read"
                  else "upload: direct (with verify: size or receipt)")
        raise DeliveryRefused(
            f"{exc} (upload: {target.upload}, verify: {target.verify}); the server does not let us {need} "
            f"what we upload: set {change} for {target.recipient} in the agreement"
        ) from None
    except DeliveryUnavailable as exc:
        if need != "rename" or "unsupported" not in str(exc).lower():
            raise
        target = session.target
        raise DeliveryRefused(
            f"{exc}; the server does not support renaming (upload: {target.upload}): set upload: direct "
            f"(with verify: size or receipt) for {target.recipient} in the agreement"
        ) from None


def _is_ours(session: SftpSession, final: str, uploaded: paramiko.SFTPAttributes, digest: tuple[int, str]) -> bool:
    """Whether the file under ``final`` is the one just renamed there.

    Gone already counts: the server confirmed the rename, and a recipient's
    poller may collect a file the moment it appears. The same size and mtime
    as the temporary file is enough on OpenSSH (a rename keeps both); a server
    that copies on rename (object stores) gets the bytes compared instead.
    """
    landed = stat_or_none(session.sftp, final)
    if landed is None:
        return True
    if landed.st_size != uploaded.st_size:
        return False
    if session.target.verify != "read-back":
        return True  # no read access: the size is all there is, and the receipt's hashes settle it
    return landed.st_mtime == uploaded.st_mtime or _remote_digest(session, final) == digest


def _discard(session: SftpSession, path: str) -> None:
    if session.watchdog is not None:
        session.watchdog.arm(f"removing {path}")
    try:
        session.sftp.remove(path)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # already gone, or the connection is down; the next attempt removes it
    finally:
        if session.watchdog is not None:
            session.watchdog.disarm()
