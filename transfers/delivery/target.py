"""Where a delivery goes: ``SftpTarget`` and the rules for remote paths.

A target names one recipient's server, its pinned host key and the directory
files go to; it checks every field when made and reports all problems at once
(``ConfigError``), so a bad agreement or connection fails before any network
call. Remote paths are always relative to the login's home, never contain a
``..`` segment or control characters, and delivered file names are plain names:
a leading dot is reserved for our temporary uploads (``temp_name``), which
recipients ignore.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.delivery.hostkeys import HostKeyPin, parse_host_key, pins_from_extra
from transfers.errors import ConfigError

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.agreement.flow import UploadMode, VerifyMode
    from transfers.connections import ConnInfo
    from transfers.settings import Settings

__all__ = ["DEFAULT_TIMEOUT", "HostKeyPin", "SftpTarget", "check_path", "parse_host_key", "temp_name"]

#: Seconds any one network wait may take (connect, banner, login, channel, each request) unless set.
DEFAULT_TIMEOUT = 60.0


def check_path(value: object, what: str, *, plain_name: bool = False) -> str:
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


def temp_name(final: str) -> str:
    """Where ``final`` is uploaded before its rename: hidden, and named after it, so a retry finds it."""
    return posixpath.join(posixpath.dirname(final), f".{posixpath.basename(final)}.partial")


@dataclass(frozen=True)
class SftpTarget:
    """Where and how to deliver: one recipient's SFTP server and directory.

    Attributes:
        host: Server name or address.
        port: TCP port.
        username: Login name.
        host_key: One pinned public host key, one line: ``"ssh-ed25519 AAAA..."``
            (as ``transfers hostkey show`` prints it, checked with the partner), with no end
            date. Give it or ``host_keys``, not both.
        host_keys: Several pinned host keys, each valid through its ``until`` (UTC), for a
            planned rotation: the server may offer any of them still valid on the day.
        password: Login password, if the server uses one (never shown in repr).
        private_key: OpenSSH/PEM private key text (never shown in repr).
        private_key_passphrase: The passphrase of ``private_key`` if it is encrypted (never shown in repr).
        remote_dir: Directory relative to the login's home; created if missing.
        timeout: Seconds any one network wait may take (connecting, the SSH banner,
            login, opening the channel and SFTP, each read and write) before the
            server counts as stalled.
        upload: How the server takes a file: ``atomic`` / ``rename`` (temporary name, then a
            rename that never replaces) or ``direct`` (the final name written).
        verify: How an upload is checked: ``read-back``, ``size`` or ``receipt``.
        recipient: The partner delivered to, named in errors that say which mode to choose.
    """

    host: str
    port: int
    username: str
    host_key: str = ""
    host_keys: tuple[HostKeyPin, ...] = ()
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    private_key_passphrase: str | None = field(default=None, repr=False)
    remote_dir: str = "."
    timeout: float = DEFAULT_TIMEOUT
    upload: UploadMode = "atomic"
    verify: VerifyMode = "read-back"
    recipient: str = "this recipient"

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
        if self.upload not in ("atomic", "rename", "direct"):
            problems.append(f"{where}: upload {self.upload!r} is not atomic, rename or direct")
        if self.verify not in ("read-back", "size", "receipt"):
            problems.append(f"{where}: verify {self.verify!r} is not read-back, size or receipt")
        if self.upload == "direct" and self.verify == "read-back":
            # As the agreement refuses it (Flow): a direct inbox may take the file away, leaving nothing to read.
            problems.append(f"{where}: upload direct cannot be checked by read-back; set verify: size or receipt")
        line_pin = None
        if self.host_key:
            try:
                line_pin = HostKeyPin(self.host_key)
            except (ValueError, AttributeError) as exc:
                problems.append(
                    f"{where}: host_key {str(self.host_key)[:40]!r}... is not a pinned public key line "
                    f"('ssh-ed25519 AAAA...'): {exc}"
                )
        if self.host_key and self.host_keys and self.host_keys != (line_pin,):
            # dataclasses.replace() passes both back, host_keys then holding just host_key's own pin.
            problems.append(f"{where}: give host_key or host_keys, not both")
        elif line_pin is not None:
            object.__setattr__(self, "host_keys", (line_pin,))
        elif self.host_key:
            pass  # reported above
        elif not self.host_keys or not all(isinstance(p, HostKeyPin) for p in self.host_keys):
            problems.append(f"{where}: no pinned host key (host_key, or host_keys: HostKeyPin entries)")
        else:
            object.__setattr__(self, "host_keys", tuple(self.host_keys))
        try:
            object.__setattr__(self, "remote_dir", check_path(self.remote_dir, f"{where}: remote_dir"))
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
        """The target for ``recipient`` from its resolved connection, its host keys pinned in the extra.

        ``extra.host_keys`` (a list of ``{"key": "ssh-ed25519 AAAA...", "until": "YYYY-MM-DD"}``, until
        optional) or ``extra.host_key`` (one line, no end date); see ``transfers.delivery.hostkeys``.
        The client key is ``extra.private_key`` (its text) or, as the Airflow SFTP connection form
        also offers, ``extra.key_file`` (a path on the worker), with ``extra.private_key_passphrase``
        if it is encrypted.
        Its timeout is the recipient's ``sftp_timeout`` if the agreement sets one, else
        ``settings.sftp_timeout`` (``TRANSFERS_SFTP_TIMEOUT``).

        Raises:
            ConfigError: The connection pins no host key, a pin is malformed, or a field is not usable.
        """
        pins = pins_from_extra(conn.extra, f"connection {conn.conn_id!r}")
        private_key = _client_key_text(conn)
        if recipient.sftp_timeout:
            timeout = recipient.sftp_timeout
        else:
            from transfers.settings import Settings

            timeout = (settings or Settings()).sftp_timeout
        return cls(
            host=conn.host or "",
            port=conn.port or 22,
            username=conn.login or "",
            # The one-line form stays one line, as the connection wrote it.
            host_key="" if conn.extra.get("host_keys") else str(conn.extra["host_key"]),
            host_keys=pins if conn.extra.get("host_keys") else (),
            password=conn.password,
            private_key=private_key,
            private_key_passphrase=conn.extra.get("private_key_passphrase") or None,
            remote_dir=recipient.remote_path,
            timeout=timeout,
            upload=recipient.upload,
            verify=recipient.verify,
            recipient=recipient.partner,
        )


def _client_key_text(conn: ConnInfo) -> str | None:
    """``extra.private_key``, else the file ``extra.key_file`` names (read here, on the worker that connects)."""
    if conn.extra.get("private_key"):
        return str(conn.extra["private_key"])
    key_file = conn.extra.get("key_file")
    if not key_file:
        return None
    try:
        return Path(str(key_file)).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"connection {conn.conn_id!r}: extra.key_file {str(key_file)!r} cannot be read "
                          f"({type(exc).__name__}); give a private key file readable by the worker, or the key "
                          "itself in extra.private_key") from None
