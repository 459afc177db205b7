"""Delivery step: upload encrypted files to a partner's SFTP server, host key pinned.

``open_sftp`` connects with paramiko's ``RejectPolicy`` (never auto-adding a
key), only the pinned host key accepted, no agent or ``~/.ssh`` keys, and weak
algorithms switched off. ``deliver_file`` never shows the recipient a partial
file and never replaces a different file under the same name: it uploads under
a hidden temporary name (removing one a cut attempt left), checks size and
SHA-256 read back from the server, then renames with a rename that fails if
the name is taken, and checks what landed. A re-run that finds the identical
file already there reports it ``"reconciled"`` instead of sending it again.

Every network wait is bounded by the target's ``timeout``: paramiko's own
limits for connecting, the banner, login and the channel, and a per-session
``Watchdog`` for the SFTP start and each request, so a stalled server is a
``DeliveryUnavailable`` naming the server and what it stalled on, never a hang.

Errors map to the shared hierarchy: ``HostKeyMismatch`` (key not the pinned
one), ``DeliveryRefused`` (login or path refused), ``DeliveryConflict`` (a
different file under the final name), ``DeliveryUnavailable`` (server down,
connection dropped, upload cut short: retriable). Messages name the server
and path, never a password or key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import posixpath
import socket
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import paramiko

from transfers.errors import (
    ConfigError,
    DeliveryConflict,
    DeliveryRefused,
    DeliveryUnavailable,
    HostKeyMismatch,
    TransferError,
)
from transfers.files import sha256_size
from transfers.watchdog import Watchdog

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.connections import ConnInfo
    from transfers.settings import Settings

__all__ = [
    "Receipt",
    "RemoteFile",
    "SftpSession",
    "SftpTarget",
    "deliver_file",
    "discard_partial",
    "list_remote",
    "open_sftp",
    "remove_remote",
]

#: Algorithms paramiko must never negotiate: CBC and 3DES ciphers, MD5/SHA-1
#: MACs, SHA-1 key exchange, SHA-1 RSA and DSA signatures. paramiko 5 already
#: drops some of these; naming them anyway keeps older paramiko releases safe.
DISABLED_ALGORITHMS: dict[str, list[str]] = {
    "ciphers": [
        "3des-cbc",
        "aes128-cbc",
        "aes192-cbc",
        "aes256-cbc",
        "blowfish-cbc",
        "arcfour",
        "arcfour128",
        "arcfour256",
    ],
    "macs": [
        "hmac-md5",
        "hmac-md5-96",
        "hmac-sha1",
        "hmac-sha1-96",
        "hmac-md5-etm@openssh.com",
        "hmac-sha1-etm@openssh.com",
    ],
    "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1", "diffie-hellman-group-exchange-sha1"],
    "keys": ["ssh-rsa", "ssh-dss"],  # host key signatures (RSA stays usable as rsa-sha2-256/512)
    "pubkeys": ["ssh-rsa", "ssh-dss"],  # our own login signature
}
_CHUNK = 32 * 1024  # paramiko's SFTP packet payload size
#: Seconds any one network wait may take (connect, banner, login, channel, each request) unless set.
DEFAULT_TIMEOUT = 60.0


def _check_path(value: object, what: str, *, plain_name: bool = False) -> str:
    """A remote path from config, made safe: relative, no ``..``, no control characters.

    Returns the path with empty and ``.`` segments dropped (``"."`` for the home
    directory). Raises ``ConfigError`` naming the value.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what} {value!r}: must be a string")
    rule = (
        "must be a plain file name (no '/', not starting with '.', no NUL or newline)"
        if plain_name
        else "must be a relative path inside the SFTP home (no '..' segment, no leading '/', no NUL or newline)"
    )
    if any(c in value for c in "\x00\n\r\\") or value.startswith("/"):
        raise ConfigError(f"{what} {value!r}: {rule}")
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ConfigError(f"{what} {value!r}: {rule}")
    if plain_name and (len(parts) != 1 or parts[0] != value or value.startswith(".")):
        # A leading dot is reserved for our temporary names, which recipients ignore.
        raise ConfigError(f"{what} {value!r}: {rule}")
    return "/".join(parts) or "."


def _parse_host_key(line: str) -> paramiko.PKey:
    """The key in a pinned ``ssh-ed25519 AAAA...`` line (a known_hosts host field is allowed)."""
    fields = line.split()
    if len(fields) >= 3 and not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        fields = fields[1:]  # "host keytype base64" as in known_hosts
    if len(fields) < 2:
        raise ValueError("expected '<key type> <base64>'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        return paramiko.PKey.from_type_string(fields[0], blob)
    except (binascii.Error, paramiko.SSHException, ValueError, TypeError) as exc:
        raise ValueError(f"not a {fields[0]} public key ({type(exc).__name__})") from None


@dataclass(frozen=True)
class SftpTarget:
    """Where and how to deliver: one recipient's SFTP server and directory.

    Attributes:
        host: Server name or address.
        port: TCP port.
        username: Login name.
        host_key: The pinned public host key, one line: ``"ssh-ed25519 AAAA..."``
            (as ``ssh-keyscan`` prints it, checked with the partner).
        password: Login password, if the server uses one (never shown in repr).
        private_key: Unencrypted OpenSSH/PEM private key text (never shown in repr).
        remote_dir: Directory relative to the login's home; created if missing.
        timeout: Seconds any one network wait may take (connecting, the SSH banner,
            login, opening the channel and SFTP, each read and write) before the
            server counts as stalled.
    """

    host: str
    port: int
    username: str
    host_key: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    remote_dir: str = "."
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        where = f"SFTP target {self.username}@{self.host}:{self.port}"
        problems = []
        if not self.host or any(c in self.host for c in "\x00\n\r /"):
            problems.append(f"{where}: host {self.host!r} is not a host name")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            problems.append(f"{where}: port {self.port!r} is not a TCP port")
        if not self.username:
            problems.append(f"{where}: username is empty")
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, int | float)
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            problems.append(f"{where}: timeout {self.timeout!r} is not a positive number of seconds")
        try:
            _parse_host_key(self.host_key)
        except (ValueError, AttributeError) as exc:
            problems.append(
                f"{where}: host_key {str(self.host_key)[:40]!r}... is not a pinned public key line "
                f"('ssh-ed25519 AAAA...'): {exc}"
            )
        try:
            object.__setattr__(self, "remote_dir", _check_path(self.remote_dir, f"{where}: remote_dir"))
        except ConfigError as exc:
            problems.extend(exc.problems)
        if problems:
            raise ConfigError(problems)

    @property
    def address(self) -> str:
        """``host:port``, as messages name the server."""
        return f"{self.host}:{self.port}"

    @classmethod
    def from_connection(cls, conn: ConnInfo, recipient: Recipient, *, settings: Settings | None = None) -> SftpTarget:
        """The target for ``recipient`` from its resolved connection: host key pinned in ``extra.host_key``.

        Its timeout is the recipient's ``sftp_timeout`` if the agreement sets one, else
        ``settings.sftp_timeout`` (``TRANSFERS_SFTP_TIMEOUT``).

        Raises:
            ConfigError: The connection pins no host key, or a field is not usable.
        """
        host_key = conn.extra.get("host_key")
        if not host_key:
            raise ConfigError(
                f"connection {conn.conn_id!r}: extra.host_key is missing; pin the server's host key "
                f"(the 'ssh-ed25519 AAAA...' line from ssh-keyscan, checked with the partner)"
            )
        if recipient.sftp_timeout:
            timeout = recipient.sftp_timeout
        else:
            from transfers.settings import Settings

            timeout = (settings or Settings()).sftp_timeout
        return cls(
            host=conn.host or "",
            port=conn.port or 22,
            username=conn.login or "",
            host_key=str(host_key),
            password=conn.password,
            private_key=conn.extra.get("private_key"),
            remote_dir=recipient.path,
            timeout=timeout,
        )


@dataclass(frozen=True)
class Receipt:
    """What ``deliver_file`` left on the server."""

    remote_path: str  # relative to the login's home, e.g. "inbound/mash/x.csv.pgp"
    size: int
    sha256: str
    status: Literal["delivered", "reconciled"]


@dataclass(frozen=True)
class RemoteFile:
    """A regular file in a remote directory."""

    name: str
    size: int
    mtime: datetime


class SftpSession:
    """An open SFTP connection to one target; made by ``open_sftp``."""

    def __init__(self, target: SftpTarget, client: paramiko.SSHClient, sftp: paramiko.SFTPClient,
                 watchdog: Watchdog | None = None) -> None:
        self.target = target
        self.client = client
        self.sftp = sftp
        self.watchdog = watchdog

    def __repr__(self) -> str:
        return f"SftpSession({self.target.username}@{self.target.address})"

    @property
    def timeout(self) -> float:
        return self.watchdog.timeout if self.watchdog else self.target.timeout

    def progress(self) -> None:
        """Called after each chunk of a long transfer, so only a stall (not a big file) times out."""
        if self.watchdog is not None:
            self.watchdog.touch()


class _RejectUnpinned(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising our error with both fingerprints.

    Only reached when the server offers a key of another type than the pinned
    one (paramiko raises ``BadHostKeyException`` for a changed key of the same
    type); either way nothing is accepted that is not pinned.
    """

    def __init__(self, target: SftpTarget, pinned: paramiko.PKey) -> None:
        self.target, self.pinned = target, pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        raise HostKeyMismatch(_mismatch(self.target, self.pinned, key))


def _mismatch(target: SftpTarget, pinned: paramiko.PKey, offered: paramiko.PKey) -> str:
    return (
        f"SFTP server {target.address}: host key {offered.get_name()} {offered.fingerprint} is not the pinned "
        f"{pinned.get_name()} {pinned.fingerprint}; nothing was sent. The server's key changed or this is not "
        "the partner's server: confirm the new key with the partner by another channel before changing the pin"
    )


def _client_key(target: SftpTarget) -> paramiko.PKey | None:
    if not target.private_key:
        return None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key(io.StringIO(target.private_key))
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    # Never quote the key: name the target and what is expected.
    raise ConfigError(
        f"SFTP target {target.username}@{target.address}: private_key is not an unencrypted "
        "OpenSSH or PEM private key (Ed25519, ECDSA or RSA)"
    )


@contextmanager
def open_sftp(target: SftpTarget, *, timeout: float | None = None) -> Iterator[SftpSession]:
    """Connect to ``target``, accepting only its pinned host key, and open SFTP.

    This is the one place SFTP sessions are opened, so every network wait of
    delivery, notices and remote purge is bounded the same way.

    Args:
        target: The server, its pinned host key and the credentials.
        timeout: Seconds any one wait may take (TCP connect, SSH banner and
            handshake, login, channel open, SFTP start, each read and write);
            default ``target.timeout``. A stalled server raises ``DeliveryUnavailable``.

    Yields:
        The session; the connection is closed when the block ends.

    Raises:
        HostKeyMismatch: The server's host key is not the pinned one.
        DeliveryRefused: Login refused, or the server offers only weak algorithms.
        DeliveryUnavailable: Not reachable, stalled, or the connection dropped.
    """
    timeout = target.timeout if timeout is None else timeout
    pinned = _parse_host_key(target.host_key)
    pkey = _client_key(target)
    client = paramiko.SSHClient()
    # paramiko looks a non-standard port up as "[host]:port", as OpenSSH writes it.
    client.get_host_keys().add(
        target.host if target.port == 22 else f"[{target.host}]:{target.port}", pinned.get_name(), pinned
    )
    client.set_missing_host_key_policy(_RejectUnpinned(target, pinned))
    where = f"SFTP server {target.address}"
    watchdog: Watchdog | None = None
    started = time.monotonic()
    try:
        client.connect(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            pkey=pkey,
            allow_agent=False,
            look_for_keys=False,  # only the credentials we were given
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            channel_timeout=timeout,
            disabled_algorithms=DISABLED_ALGORITHMS,
        )
        transport = client.get_transport()
        assert transport is not None  # connect() returned: it has one
        watchdog = Watchdog(timeout, transport.close)
        watchdog.arm("opening the SSH channel")
        channel = transport.open_session(timeout=timeout)
        channel.settimeout(timeout)  # each SFTP read and write
        # Not client.open_sftp(): it waits for the subsystem's answer and the SFTP
        # version without any limit. Here the watchdog bounds both.
        watchdog.arm("starting the SFTP subsystem")
        channel.invoke_subsystem("sftp")
        sftp = paramiko.SFTPClient(channel)
        watchdog.disarm()
    except BaseException as exc:
        stalled = watchdog.stalled if watchdog is not None else None
        if watchdog is not None:
            watchdog.stop()
        else:
            stalled = _connect_stall(exc, client.get_transport(), time.monotonic() - started >= timeout)
        client.close()
        if isinstance(exc, TransferError):
            raise
        if isinstance(exc, paramiko.BadHostKeyException):
            raise HostKeyMismatch(_mismatch(target, exc.expected_key, exc.key)) from None
        if stalled:
            raise DeliveryUnavailable(
                f"{where}: no answer within {timeout:g}s while {stalled}; the server or the link is stalled, "
                "a later attempt may succeed"
            ) from None
        if isinstance(exc, paramiko.AuthenticationException):
            raise DeliveryRefused(
                f"{where}: login as {target.username!r} refused ({type(exc).__name__}); "
                "check the connection's credentials with the partner"
            ) from None
        if isinstance(exc, paramiko.IncompatiblePeer):
            raise DeliveryRefused(
                f"{where}: no algorithm in common ({exc}); we refuse CBC ciphers, SHA-1 "
                "and MD5; ask the partner to enable modern ones"
            ) from None
        if isinstance(exc, (OSError, EOFError, paramiko.SSHException)):
            raise DeliveryUnavailable(
                f"{where}: cannot connect ({_reason(exc)}); a later attempt may succeed"
            ) from None
        raise
    try:
        yield SftpSession(target, client, sftp, watchdog)
    finally:
        watchdog.stop()
        client.close()


def _connect_stall(exc: BaseException, transport: paramiko.Transport | None, overran: bool) -> str | None:
    """Which wait of ``SSHClient.connect`` ran out, or ``None`` if ``exc`` is not a timeout.

    paramiko's own message does not say reliably (its overall negotiation limit
    and the banner limit race, and the loser reports "No existing session"), so
    the phase is read from how far the transport got. An authentication timeout
    in particular is an ``AuthenticationException`` and must not pass for a
    refused login, while a slow refusal must not pass for a stall.
    """
    text = str(exc).lower()
    said_timeout = isinstance(exc, socket.timeout | TimeoutError) or "timeout" in text or "timed out" in text
    if isinstance(exc, paramiko.AuthenticationException):
        return "logging in" if said_timeout else None
    if not (said_timeout or overran) or isinstance(exc, paramiko.BadHostKeyException | paramiko.IncompatiblePeer):
        return None
    if transport is None:
        return "connecting (TCP)"
    if not transport.remote_version:
        return "waiting for the SSH banner"
    if not transport.initial_kex_done:
        return "negotiating the SSH session"
    if not transport.is_authenticated():
        return "logging in"
    return "opening the SSH channel"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]


@contextmanager
def _remote(session: SftpSession, action: str) -> Iterator[None]:
    """Map an SFTP failure during ``action`` to our errors; a stall in it is bounded."""
    watchdog = session.watchdog
    if watchdog is not None:
        watchdog.arm(action)
    try:
        yield
    except TransferError:
        raise
    except PermissionError:
        raise DeliveryRefused(f"SFTP server {session.target.address}: {action}: permission denied") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        stalled = watchdog.stalled if watchdog is not None else None
        if stalled or isinstance(exc, socket.timeout | TimeoutError):
            # Abandon the connection: every later request on it would wait out the timeout again.
            session.client.close()
            raise DeliveryUnavailable(
                f"SFTP server {session.target.address}: no answer within {session.timeout:g}s while "
                f"{stalled or action}; the server or the link is stalled, a later attempt may succeed"
            ) from None
        raise DeliveryUnavailable(
            f"SFTP server {session.target.address}: {action} failed ({_reason(exc)}); a later attempt may succeed"
        ) from None
    finally:
        if watchdog is not None:
            watchdog.disarm()


def _stat(sftp: paramiko.SFTPClient, path: str) -> paramiko.SFTPAttributes | None:
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None


def _makedirs(session: SftpSession, path: str) -> None:
    sftp, current = session.sftp, ""
    for part in [] if path == "." else path.split("/"):
        current = f"{current}/{part}" if current else part
        attrs = _stat(sftp, current)
        if attrs is None:
            try:
                sftp.mkdir(current)
            except OSError:
                if _stat(sftp, current) is None:  # not made by a concurrent attempt either
                    raise
                continue
        elif not stat.S_ISDIR(attrs.st_mode or 0):
            raise DeliveryRefused(f"sftp://{session.target.address}/{current}: exists and is not a directory")


def _remote_digest(session: SftpSession, path: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with session.sftp.open(path, "rb") as fh:
        fh.prefetch()  # pipelined reads: one round trip per window, not per chunk
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            session.progress()
    return size, digest.hexdigest()


def _temp_name(final: str) -> str:
    """Where ``final`` is uploaded before its rename: hidden, and named after it, so a retry finds it."""
    return posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.partial")


def deliver_file(session: SftpSession, local_path: Path, remote_name: str) -> Receipt:
    """Upload one file into the target's ``remote_dir`` so the recipient sees it whole or not at all.

    If a file already sits under ``remote_name`` with the same size and
    SHA-256 (a re-run after a crash), nothing is sent and the receipt says
    ``"reconciled"``. Otherwise the file goes to ``.{remote_name}.partial``
    (replacing one a cut attempt left), its size and SHA-256 are read back and
    checked, and it is renamed to ``remote_name`` with a plain SFTP rename,
    which fails if that name is taken (``posix-rename@openssh.com`` would
    replace it); the file under the final name is then checked to be the one
    renamed. Any failure removes the temporary file.

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
        DeliveryRefused: The server refused a directory or file operation.
        DeliveryUnavailable: The connection failed or stalled, or the upload did not verify.
    """
    name = _check_path(remote_name, "remote file name", plain_name=True)
    directory = session.target.remote_dir
    final = name if directory == "." else posixpath.join(directory, name)
    temp = _temp_name(final)
    size, sha256 = sha256_size(Path(local_path))
    sftp = session.sftp
    where = f"sftp://{session.target.address}/{final}"

    with _remote(session, f"preparing {directory!r}"):
        _makedirs(session, directory)
        existing = _stat(sftp, final)
    if existing is not None:
        with _remote(session, f"checking the existing {final}"):
            same = (
                stat.S_ISREG(existing.st_mode or 0)
                and existing.st_size == size
                and _remote_digest(session, final) == (size, sha256)
            )
        if same:
            _discard(session, temp)  # debris of an attempt cut short before the one that landed
            return Receipt(final, size, sha256, "reconciled")
        raise DeliveryConflict(
            f"{where}: a different file already sits under this name ({existing.st_size} bytes there, ours "
            f"{size} bytes, sha256 {sha256[:16]}...); not overwriting. Ask the recipient whether it was "
            "collected, and remove it only once it is accounted for"
        )

    with Path(local_path).open("rb") as local:  # opened first: a local error is not the server's
        try:
            with _remote(session, f"uploading {temp}"):
                if _stat(sftp, temp) is not None:
                    sftp.remove(temp)  # left by an attempt that was cut short; ours by its name
                with sftp.open(temp, "wx") as remote:
                    # Pipelined writes are fast over a WAN, but paramiko does not report a
                    # failed pipelined write at all: the read-back below is what catches it.
                    remote.set_pipelined(True)
                    while chunk := local.read(_CHUNK):
                        remote.write(chunk)
                        session.progress()
            with _remote(session, f"reading back {temp}"):
                # put(confirm=True) would compare sizes only; compare the bytes.
                sent = _remote_digest(session, temp)
            if sent != (size, sha256):
                raise DeliveryUnavailable(
                    f"{where}: the uploaded copy does not match ({sent[0]} of {size} bytes"
                    f"{', different content' if sent[0] == size else ''}); "
                    "a later attempt may succeed"
                )
            with _remote(session, f"renaming {temp} to {final}"):
                uploaded = sftp.stat(temp)
                if _stat(sftp, final) is not None:
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
                    if _stat(sftp, final) is None:
                        raise
                    raise DeliveryConflict(
                        f"{where}: a file appeared under this name during the upload; not overwriting it. "
                        "Ask the recipient what it is before delivering again"
                    ) from None
            with _remote(session, f"checking {final} after the rename"):
                if not _is_ours(session, final, uploaded, (size, sha256)):
                    raise DeliveryConflict(
                        f"{where}: after the rename the file under this name is not the one uploaded "
                        f"(ours {size} bytes, sha256 {sha256[:16]}...); ask the recipient what replaced it"
                    )
        except BaseException:
            # The recipient must never see a partial file, whatever went wrong.
            _discard(session, temp)
            raise
    return Receipt(final, size, sha256, "delivered")


def _is_ours(session: SftpSession, final: str, uploaded: paramiko.SFTPAttributes, digest: tuple[int, str]) -> bool:
    """Whether the file under ``final`` is the one just renamed there.

    Gone already counts: the server confirmed the rename, and a recipient's
    poller may collect a file the moment it appears. The same size and mtime
    as the temporary file is enough on OpenSSH (a rename keeps both); a server
    that copies on rename (object stores) gets the bytes compared instead.
    """
    landed = _stat(session.sftp, final)
    if landed is None:
        return True
    if landed.st_size != uploaded.st_size:
        return False
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
    return remove_remote(session, _temp_name(_check_path(remote_path, "remote path")))


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
    path = _check_path(remote_path, "remote path")
    sftp = session.sftp
    with _remote(session, f"deleting {path}"):
        attrs = _stat(sftp, path)
        if attrs is None:
            return False
        if not stat.S_ISREG(attrs.st_mode or 0):
            raise DeliveryRefused(f"sftp://{session.target.address}/{path}: not a regular file; not deleting")
        sftp.remove(path)
        if _stat(sftp, path) is not None:
            raise DeliveryRefused(f"sftp://{session.target.address}/{path}: still present after deletion")
    return True


def list_remote(session: SftpSession, remote_dir: str) -> list[RemoteFile]:
    """The regular files in ``remote_dir`` (including our hidden ``.partial`` ones), by name.

    A directory that does not exist lists as empty.
    """
    path = _check_path(remote_dir, "remote_dir")
    with _remote(session, f"listing {path}"):
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
