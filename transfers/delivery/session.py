"""SFTP sessions: the one place a connection is opened, its host key checked and its waits bounded.

``open_sftp`` connects with a ``RejectPolicy`` that accepts only a host key
pinned and valid today (UTC) and never adds one (``hostkeys.PinnedOnly``),
asking the server for the pinned key types first; no agent or ``~/.ssh`` keys,
and weak algorithms switched off.

Every network wait is bounded by the target's ``timeout``: paramiko's own
limits for connecting, the banner, login and the channel, and a per-session
``Watchdog`` for the SFTP start and each request (``sftp_call``), so a stalled
server is a ``DeliveryUnavailable`` naming the server and what it stalled on,
never a hang.

Errors map to the shared hierarchy: ``HostKeyMismatch`` (key not pinned, or its
pin expired), ``DeliveryRefused`` (login or path refused), ``DeliveryUnavailable``
(server down, connection dropped, stalled: retriable). Messages name the server
and path, never a password or key.

The rules above a session (``upload``, ``remote``) use only the ``SftpOps``
methods of ``session.sftp``, so they can run over an in-memory fake.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Protocol

import paramiko
from paramiko.ssh_exception import IncompatiblePeer  # not re-exported by paramiko's type stubs

from transfers.delivery.hostkeys import HostKeyPin, PinnedOnly, host_key_algorithms, mismatch
from transfers.delivery.target import SftpTarget
from transfers.errors import (
    ConfigError,
    DeliveryRefused,
    DeliveryUnavailable,
    HostKeyMismatch,
    TransferError,
)
from transfers.watchdog import Watchdog

# paramiko's transport says "Connected", "Authentication successful" and "Opened sftp connection" at info on
# every connection: three lines per delivery and per receipt look in a task log, where the step's own line says
# what matters. Its warnings and errors still show.
logging.getLogger("paramiko.transport").setLevel(logging.WARNING)

__all__ = [
    "DISABLED_ALGORITHMS",
    "SftpFile",
    "SftpOps",
    "SftpSession",
    "open_sftp",
    "sftp_call",
    "stat_or_none",
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


class SftpFile(Protocol):
    """The methods of ``paramiko.SFTPFile`` that delivery uses."""

    def __enter__(self) -> SftpFile: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> object: ...
    def read(self, size: int) -> bytes: ...
    def write(self, data: bytes) -> object: ...
    def seek(self, offset: int) -> object: ...
    def set_pipelined(self, pipelined: bool = True) -> object: ...
    def flush(self) -> object: ...
    def stat(self) -> paramiko.SFTPAttributes: ...


class SftpOps(Protocol):
    """The methods of ``paramiko.SFTPClient`` that delivery and remote purge use.

    The seam for unit tests: an in-memory fake (``tests/support/sftp_fake.py``)
    implements these and nothing else, so a rule that needs another call shows
    up here first. A missing path raises ``FileNotFoundError``, a refused one
    ``PermissionError``; ``rename`` is SSH_FXP_RENAME, which fails if the new
    name is taken.
    """

    def stat(self, path: str) -> paramiko.SFTPAttributes: ...
    def mkdir(self, path: str, mode: int = 0o777) -> object: ...
    def open(self, filename: str, mode: str = "r", bufsize: int = -1) -> SftpFile: ...
    def remove(self, path: str) -> object: ...
    def rename(self, oldpath: str, newpath: str) -> object: ...
    def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]: ...


class SftpSession:
    """An open SFTP connection to one target; made by ``open_sftp``.

    ``client`` is ``None`` only for a session made over a fake ``sftp`` in tests;
    a stalled request then has no connection to abandon.
    """

    def __init__(self, target: SftpTarget, client: paramiko.SSHClient | None, sftp: SftpOps,
                 watchdog: Watchdog | None = None, pin: HostKeyPin | None = None) -> None:
        self.target = target
        self.client = client
        self.sftp = sftp
        self.watchdog = watchdog
        self.pin = pin  # the pinned host key the server showed (None over a fake)

    def __repr__(self) -> str:
        return f"SftpSession({self.target.username}@{self.target.address})"

    @property
    def timeout(self) -> float:
        return self.watchdog.timeout if self.watchdog else self.target.timeout

    def progress(self) -> None:
        """Called after each chunk of a long transfer, so only a stall (not a big file) times out."""
        if self.watchdog is not None:
            self.watchdog.touch()


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
def open_sftp(target: SftpTarget, *, timeout: float | None = None, today: date | None = None
              ) -> Iterator[SftpSession]:
    """Connect to ``target``, accepting only a host key pinned and valid today, and open SFTP.

    This is the one place SFTP sessions are opened, so every network wait of
    delivery, notices and remote purge is bounded the same way.

    Args:
        target: The server, its pinned host key and the credentials.
        timeout: Seconds any one wait may take (TCP connect, SSH banner and
            handshake, login, channel open, SFTP start, each read and write);
            default ``target.timeout``. A stalled server raises ``DeliveryUnavailable``.
        today: The day pins are judged on (a pin is valid through its ``until``); default today in
            UTC. Not a run's logical date: a rerun of an old date must not revive an expired key.

    Yields:
        The session (``session.pin``: the pin the server's key matched); closed when the block ends.

    Raises:
        HostKeyMismatch: The server's host key is not pinned, or its pin expired before ``today``.
        DeliveryRefused: Login refused, or the server offers only weak algorithms.
        DeliveryUnavailable: Not reachable, stalled, or the connection dropped.
    """
    timeout = target.timeout if timeout is None else timeout
    today = today or datetime.now(UTC).date()
    pkey = _client_key(target)
    client = paramiko.SSHClient()
    # Known hosts stay empty: paramiko keeps one key per type there, and a rotation may pin two of
    # one type, so every offered key goes to the policy, which accepts only a valid pin.
    policy = PinnedOnly(target.address, target.host_keys, today)
    client.set_missing_host_key_policy(policy)

    def pinned_types_first(sock: Any, /, **kwargs: Any) -> paramiko.Transport:
        made = paramiko.Transport(sock, **kwargs)
        options = made.get_security_options()
        plain = [a for a in made.preferred_keys if "-cert-" not in a]  # paramiko adds the cert variants back
        options.key_types = host_key_algorithms(target.host_keys, today, plain)
        # AES-GCM first where the server has it: one authenticated pass instead of CTR plus HMAC, about a
        # quarter less CPU per byte in paramiko (bench/bench_deliver.py). The same allowed set, reordered.
        options.ciphers = tuple(sorted(made.preferred_ciphers, key=lambda name: "-gcm@" not in name))
        return made
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
            transport_factory=pinned_types_first,
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
            # Not reached with empty known hosts; kept so a changed paramiko cannot turn it into another error.
            raise HostKeyMismatch(mismatch(target.address, target.host_keys, exc.key, today), address=target.address,
                                  offered=f"{exc.key.get_name()} {exc.key.fingerprint}") from None
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
        if isinstance(exc, IncompatiblePeer):
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
        yield SftpSession(target, client, sftp, watchdog, policy.matched)
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
    if not (said_timeout or overran) or isinstance(exc, paramiko.BadHostKeyException | IncompatiblePeer):
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
def sftp_call(session: SftpSession, action: str) -> Iterator[None]:
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
            if session.client is not None:
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


def stat_or_none(sftp: SftpOps, path: str) -> paramiko.SFTPAttributes | None:
    """``sftp.stat(path)``, or ``None`` if nothing is there."""
    try:
        return sftp.stat(path)
    except FileNotFoundError:
        return None
