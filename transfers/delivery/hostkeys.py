"""Pinned SFTP host keys: several per server, each with an optional ``until`` date, and what a server offers.

A connection pins its server's keys in its ``extra`` (where the Airflow SFTP
provider keeps a host key too), either one line::

    {"host_key": "ssh-ed25519 AAAA..."}

or several, for a planned rotation, each valid through its ``until`` day (UTC)::

    {"host_keys": [{"key": "ssh-ed25519 AAAA...(old)", "until": "2026-12-31"},
                   {"key": "ssh-ed25519 AAAA...(new)"}]}

A pin is judged on the UTC date of the moment a connection is made, never on a
run's logical date (a rerun of an old date must not revive an expired key).

``PinnedOnly`` is the policy ``open_sftp`` gives paramiko: it accepts a key only
if it is one of the pins valid today, adds nothing, and otherwise raises
``HostKeyMismatch`` naming the server, the offered key and the pins (expired
ones marked). ``host_key_algorithms`` makes paramiko ask for the pinned key
types first. ``scan_host_keys`` asks a server for each key type it has, for
``transfers hostkey show``: it trusts nothing and never logs in.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import paramiko
from paramiko.ssh_exception import IncompatiblePeer  # not re-exported by paramiko's type stubs

from transfers.errors import ConfigError, HostKeyMismatch, TransferError

# paramiko's transport thread logs a refused key type as an error with a traceback; for a scan that
# is an expected answer ("not this type"), so its log goes nowhere.
_SCAN_LOG = "transfers.delivery.hostkeys.scan"
logging.getLogger(_SCAN_LOG).addHandler(logging.NullHandler())
logging.getLogger(_SCAN_LOG).propagate = False

__all__ = [
    "HostKeyPin",
    "OfferedKey",
    "PinnedOnly",
    "connection_pin_warning",
    "connection_pins",
    "describe_pins",
    "host_key_algorithms",
    "known_hosts_name",
    "mismatch",
    "parse_host_key",
    "pin_warnings",
    "pins_from_extra",
    "scan_host_keys",
]

#: The host key algorithms that sign with each key type (RSA only with SHA-2: ``ssh-rsa`` is SHA-1).
_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


def parse_host_key(line: str) -> paramiko.PKey:
    """The key in a pinned ``ssh-ed25519 AAAA...`` line (a known_hosts host field is allowed).

    The base64 key alone is accepted too, as the Airflow SFTP/SSH providers' ``host_key`` field
    takes it: its type is read from the key itself, never assumed.
    """
    fields = line.split()
    if len(fields) >= 3 and not fields[0].startswith(("ssh-", "ecdsa-", "sk-")):
        fields = fields[1:]  # "host keytype base64" as in known_hosts
    if len(fields) == 1:
        fields = [_blob_type(fields[0]), fields[0]]
    if len(fields) < 2:
        raise ValueError("expected '<key type> <base64>'")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        return paramiko.PKey.from_type_string(fields[0], blob)
    except (binascii.Error, paramiko.SSHException, ValueError, TypeError) as exc:
        raise ValueError(f"not a {fields[0]} public key ({type(exc).__name__})") from None


def _blob_type(text: str) -> str:
    """The key type an SSH public key blob starts with (a length-prefixed string, RFC 4253 6.6)."""
    try:
        blob = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("expected '<key type> <base64>' or the base64 key alone") from None
    size = int.from_bytes(blob[:4], "big")
    name = blob[4 : 4 + size]
    if len(blob) < 4 or not 0 < size < 64 or len(name) != size or not name.isascii():
        raise ValueError("the base64 key does not start with its key type")
    return name.decode()


@dataclass(frozen=True)
class HostKeyPin:
    """One pinned host key: its line (``"ssh-ed25519 AAAA..."``), valid through ``until`` (UTC) if set.

    Raises ``ValueError`` when the line is not a public key of a type we can check.
    """

    line: str
    until: date | None = None
    key: paramiko.PKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = parse_host_key(self.line)
        if key.get_name() not in _ALGORITHMS:
            raise ValueError(f"{key.get_name()} host keys are not supported (use one of: {', '.join(_ALGORITHMS)})")
        object.__setattr__(self, "key", key)

    @property
    def key_type(self) -> str:
        return self.key.get_name()

    @property
    def fingerprint(self) -> str:
        """``SHA256:...``, as ``ssh-keygen -lf`` prints it."""
        return self.key.fingerprint

    def valid_on(self, day: date) -> bool:
        """Whether the server may offer this key on ``day`` (``until`` itself included)."""
        return self.until is None or day <= self.until

    def matches(self, offered: paramiko.PKey) -> bool:
        return offered.get_name() == self.key_type and offered.asbytes() == self.key.asbytes()

    def describe(self) -> str:
        """``ssh-ed25519 SHA256:...``, with `` (until 2026-12-31)`` if it has an end date."""
        return f"{self.key_type} {self.fingerprint}" + (f" (until {self.until})" if self.until else "")


def pins_from_extra(extra: Mapping[str, object], where: str) -> tuple[HostKeyPin, ...]:
    """The pins in a connection's ``extra``: ``host_keys`` (a list) or ``host_key`` (one line, no end date).

    Raises:
        ConfigError: Neither or both are set, or an entry is not a key line with an optional ISO ``until``
            date (every problem at once, each naming ``where`` and the entry).
    """
    one, several = extra.get("host_key"), extra.get("host_keys")
    if one and several:
        raise ConfigError(f"{where}: both extra.host_key and extra.host_keys are set; keep only host_keys "
                          "(a key left in host_key would never expire)")
    if not several:
        if not one:
            # The SFTP provider's form offers no_host_key_check; here every server's key is pinned.
            unchecked = (" (extra.no_host_key_check is not honoured: a server is trusted only by its pinned key)"
                         if str(extra.get("no_host_key_check", "")).lower() == "true" else "")
            raise ConfigError(f"{where}: extra.host_key is missing{unchecked}; pin the server's host key (the "
                              "'ssh-ed25519 AAAA...' line from ssh-keygen -lf / transfers hostkey show, checked with "
                              "the partner), or several in extra.host_keys")
        try:
            return (HostKeyPin(str(one)),)
        except ValueError as exc:
            raise ConfigError(f"{where}: extra.host_key is not a pinned public key line ('ssh-ed25519 AAAA...'): "
                              f"{exc}") from None
    if not isinstance(several, list):
        raise ConfigError(f"{where}: extra.host_keys must be a list of {{'key': ..., 'until': 'YYYY-MM-DD'}}")
    pins: list[HostKeyPin] = []
    problems: list[str] = []
    for index, entry in enumerate(several):
        what = f"{where}: extra.host_keys[{index}]"
        if isinstance(entry, str):
            entry = {"key": entry}
        if not isinstance(entry, Mapping) or set(entry) - {"key", "until"} or "key" not in entry:
            problems.append(f"{what}: must be {{'key': 'ssh-ed25519 AAAA...', 'until': 'YYYY-MM-DD'}} "
                            "('until' optional, no other field)")
            continue
        until = entry.get("until")
        try:
            if until is not None and not isinstance(until, date):
                until = date.fromisoformat(str(until))
        except ValueError:
            problems.append(f"{what}: until {until!r} is not a date (YYYY-MM-DD)")
            continue
        try:
            pin = HostKeyPin(str(entry["key"]), until)
        except ValueError as exc:
            problems.append(f"{what}: key is not a pinned public key line ('ssh-ed25519 AAAA...'): {exc}")
            continue
        if any(p.matches(pin.key) for p in pins):
            problems.append(f"{what}: {pin.key_type} {pin.fingerprint} is pinned twice")
            continue
        pins.append(pin)
    if not pins and not problems:
        problems.append(f"{where}: extra.host_keys is empty; pin at least one host key")
    if problems:
        raise ConfigError(problems)
    return tuple(pins)


def host_key_algorithms(pins: Iterable[HostKeyPin], today: date, offered: Iterable[str]) -> list[str]:
    """The host key algorithms to ask for: the types of pins valid ``today``, then expired pins', then the rest.

    The server picks the first it has, so it shows a pinned key whenever it has one; an expired pin's
    type and the rest of ``offered`` (paramiko's preferred list) stay in, so a server without any pinned
    type still shows its key and is refused naming it, rather than failing with "no algorithm in common".
    """
    pins = list(pins)
    wanted = [a for p in pins if p.valid_on(today) for a in _ALGORITHMS[p.key_type]]
    wanted += [a for p in pins if not p.valid_on(today) for a in _ALGORITHMS[p.key_type]]
    available = list(offered)
    ordered = [a for a in dict.fromkeys(wanted) if a in available]
    return ordered + [a for a in available if a not in ordered]


class PinnedOnly(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, except that a key pinned and valid ``today`` passes (and is never added).

    ``open_sftp`` leaves the client's known hosts empty, so paramiko asks this policy about every
    key a server offers; ``matched`` is the pin that let it through.
    """

    def __init__(self, address: str, pins: tuple[HostKeyPin, ...], today: date) -> None:
        self.address, self.pins, self.today = address, pins, today
        self.matched: HostKeyPin | None = None

    def missing_host_key(  # type: ignore[override]  # returning is how a policy accepts a key
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        for pin in self.pins:
            if pin.matches(key) and pin.valid_on(self.today):
                self.matched = pin
                return
        raise HostKeyMismatch(mismatch(self.address, self.pins, key, self.today), address=self.address,
                              offered=f"{key.get_name()} {key.fingerprint}")


def mismatch(address: str, pins: tuple[HostKeyPin, ...], offered: paramiko.PKey, today: date) -> str:
    """Why ``offered`` is refused: the server, the offered key, and the pins (valid and expired) on ``today``."""
    valid = [p for p in pins if p.valid_on(today)]
    expired = [p for p in pins if not p.valid_on(today)]
    shown = f"SFTP server {address}: host key {offered.get_name()} {offered.fingerprint}"
    pinned = " or ".join(p.describe() for p in valid)
    lapsed = next((p for p in expired if p.matches(offered)), None)
    if lapsed is not None:
        reason = f"{shown} was pinned only until {lapsed.until}, before {today} (UTC)"
        reason += f"; the pinned one now is {pinned}" if valid else "; no pin is valid now"
    elif valid:
        reason = f"{shown} is not the pinned {pinned}"
    else:
        reason = f"{shown} is not pinned, and no pin is valid on {today} (UTC)"
    if expired:
        reason += "; expired pins: " + ", ".join(p.describe() for p in expired)
    return (f"{reason}; nothing was sent. The server's key changed or this is not the partner's server: "
            "confirm its key with the partner by another channel (transfers hostkey show) before changing "
            "the pins")


def pin_warnings(pins: Sequence[HostKeyPin], today: date, margin: timedelta = timedelta(days=30)) -> list[str]:
    """What to do about pins that ended before ``today`` or end within ``margin`` of it (empty: nothing)."""
    notes = []
    for pin in pins:
        if pin.until is None:
            continue
        if pin.until < today:
            notes.append(f"pin {pin.key_type} {pin.fingerprint} ended on {pin.until}: the server can no longer "
                         "use it; remove it from extra.host_keys")
        elif pin.until - today <= margin:
            notes.append(f"pin {pin.key_type} {pin.fingerprint} ends on {pin.until} (in {(pin.until - today).days} "
                         "days)")
    if notes and not any(p.until is None or p.until - today > margin for p in pins):
        last = max(p.until for p in pins if p.until is not None)
        notes.append(f"no pin is valid after {last}: pin the partner's next key (transfers hostkey show, checked "
                     "with them) before then, or that night's connection is refused")
    return notes


def connection_pins(lookup: Callable[[str], Any], conn_id: str) -> tuple[HostKeyPin, ...]:
    """The pins of connection ``conn_id`` (resolved with ``lookup``); ``ConfigError`` as ``pins_from_extra``."""
    return pins_from_extra(lookup(conn_id).extra, f"connection {conn_id!r}")


def connection_pin_warning(lookup: Callable[[str], Any], conn_id: str, today: date, margin: timedelta) -> str:
    """``pin_warnings`` of connection ``conn_id`` (resolved with ``lookup``), joined with ``"; "``.

    Empty when the connection or its pins cannot be read: the check that connects reports that.
    """
    try:
        return "; ".join(pin_warnings(connection_pins(lookup, conn_id), today, margin))
    except TransferError:
        return ""


def describe_pins(matched: HostKeyPin | None, pins: Sequence[HostKeyPin]) -> str:
    """``the server showed <pin>; pins: <each with its end date>``, for a check's detail."""
    shown = matched.describe() if matched is not None else "no pin"
    return f"the server showed {shown}; pins: " + ", ".join(
        p.describe() if p.until else f"{p.describe()} (no end date)" for p in pins)


def known_hosts_name(host: str, port: int) -> str:
    """The host as OpenSSH's known_hosts names it: ``host``, or ``[host]:port`` off port 22."""
    return host if port == 22 else f"[{host}]:{port}"


@dataclass(frozen=True)
class OfferedKey:
    """A host key a server offered: ``key_type`` (``ssh-ed25519``), ``bits``, ``fingerprint`` (``SHA256:...``)."""

    key_type: str
    bits: int
    fingerprint: str
    line: str  # "ssh-ed25519 AAAA...": what a reviewed config change pins


def scan_host_keys(host: str, port: int, *, timeout: float,
                   disabled_algorithms: Mapping[str, list[str]] | None = None) -> list[OfferedKey]:
    """Each host key ``host:port`` offers, one key exchange per key type; no login, nothing trusted or stored.

    Raises:
        OSError: The server cannot be reached (or stalls past ``timeout``).
        paramiko.SSHException: The SSH handshake failed other than by lacking a key type.
    """
    found: dict[str, OfferedKey] = {}
    for key_type, algorithms in _ALGORITHMS.items():
        key = _offered(host, port, list(algorithms), timeout, dict(disabled_algorithms or {}))
        if key is not None and key.get_name() == key_type:
            line = f"{key.get_name()} {key.get_base64()}"
            found[key_type] = OfferedKey(key.get_name(), key.get_bits(), key.fingerprint, line)
    return list(found.values())


def _offered(host: str, port: int, algorithms: list[str], timeout: float,
             disabled: dict[str, list[str]]) -> paramiko.PKey | None:
    """The key the server shows when asked for only ``algorithms``, or ``None`` if it has none of them."""
    sock = socket.create_connection((host, port), timeout=timeout)
    transport = paramiko.Transport(sock, disabled_algorithms=disabled)
    transport.set_log_channel(_SCAN_LOG)
    try:
        transport.banner_timeout = timeout
        options = transport.get_security_options()
        allowed = [a for a in algorithms if a in transport.preferred_keys]
        if not allowed:
            return None
        options.key_types = allowed
        try:
            transport.start_client(timeout=timeout)
        except IncompatiblePeer as exc:
            if "host key" in str(exc):  # "no acceptable host key": the server has no key of these types
                return None
            raise  # no cipher, MAC or key exchange in common: not an answer about its keys
        # start_client only exchanged keys: no user name or password was ever sent.
        return transport.get_remote_server_key()
    finally:
        transport.close()
        sock.close()

