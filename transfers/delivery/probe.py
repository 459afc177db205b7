"""Preflight's look at a recipient's remote directory: can it take a delivery in the recipient's modes?

``probe_remote_dir`` does what a delivery will do with a hidden probe file instead of data: write it,
read it back (``verify: read-back``), rename it (``upload: atomic`` / ``rename``), remove it, so a server
that refuses one of these fails ``transfers validate --connect`` with the mode to set, not the first
night. For ``upload: direct`` nothing is written: such an inbox hands every file, a probe too, to the
recipient.
"""

from __future__ import annotations

import posixpath
import uuid

from transfers.delivery.session import SftpSession, stat_or_none
from transfers.errors import DeliveryRefused, DeliveryUnavailable

__all__ = ["probe_remote_dir"]

_PROBE = b"transfers preflight: safe to delete\n"


def probe_remote_dir(session: SftpSession) -> str:
    """Check the target's ``remote_dir`` (or its nearest existing parent) takes files in the target's modes.

    Returns:
        What was checked, for the preflight row.

    Raises:
        DeliveryRefused: The server refused a step the modes need; the message names the mode to set.
        DeliveryUnavailable: The probe file could not be removed (the message says where).
        OSError, EOFError, paramiko.SSHException: The connection failed (the caller reports it).
    """
    target, sftp = session.target, session.sftp
    directory, address = target.remote_dir, target.address
    existing = directory
    while existing != "." and stat_or_none(sftp, existing) is None:
        existing = posixpath.dirname(existing) or "."
    exists_note = "" if existing == directory else f" ({directory!r} does not exist yet; the first delivery creates it)"
    if target.upload == "direct":
        return f"{existing!r} exists; upload: direct, so no probe file was written (the inbox would pass it on){exists_note}"
    # Hidden names, like our uploads' temporary names, which recipients ignore.
    probe = posixpath.join(existing, f".transfers-preflight-{uuid.uuid4().hex}.tmp")
    moved = probe.removesuffix(".tmp") + ".renamed.tmp"
    modes = f"(upload: {target.upload}, verify: {target.verify})"
    try:
        try:
            with sftp.open(probe, "wx") as fh:
                fh.write(_PROBE)
        except (OSError, EOFError) as exc:
            reason = "permission denied" if isinstance(exc, PermissionError) else (str(exc) or type(exc).__name__)
            raise DeliveryRefused(f"sftp://{address}/{existing}: cannot write a file there ({reason}); ask the "
                                  f"partner to let {target.username!r} write to {directory!r}") from None
        if stat_or_none(sftp, probe) is None:
            raise DeliveryRefused(f"sftp://{address}/{existing}: a file written there was taken away once closed "
                                  f"{modes}: set upload: direct (with verify: size or receipt) for {target.recipient}")
        if target.verify == "read-back":
            try:
                with sftp.open(probe, "rb") as fh:
                    fh.read(len(_PROBE))
            except PermissionError:
                raise DeliveryRefused(f"sftp://{address}/{existing}: files written there cannot be read back "
                                      f"{modes}: set verify: size (or receipt) for {target.recipient}") from None
        try:
            sftp.rename(probe, moved)
        except PermissionError:
            raise DeliveryRefused(f"sftp://{address}/{existing}: files written there cannot be renamed {modes}: "
                                  f"set upload: direct (with verify: size or receipt) for {target.recipient}") from None
        probe = moved
    finally:
        try:
            sftp.remove(probe)
        except (OSError, EOFError):
            pass  # never written, or the connection dropped: checked below
    if stat_or_none(sftp, probe) is not None:
        raise DeliveryUnavailable(f"sftp://{address}/{probe}: the preflight file could not be removed; remove it")
    return f"{existing!r} takes a file as the modes need {modes}: written, " + (
        "read back, " if target.verify == "read-back" else "") + f"renamed and removed{exists_note}"
