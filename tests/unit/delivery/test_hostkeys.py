"""Pinned host keys: the connection's ``host_keys`` with ``until`` dates, judged on a given day, and the warnings."""

from __future__ import annotations

from datetime import date, timedelta

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from transfers.agreement.flow import Recipient
from transfers.connections import ConnInfo
from transfers.delivery import SftpTarget
from transfers.delivery.hostkeys import (
    HostKeyPin,
    PinnedOnly,
    connection_pin_warning,
    host_key_algorithms,
    mismatch,
    pin_warnings,
    pins_from_extra,
)
from transfers.errors import ConfigError, HostKeyMismatch

DAY = date(2026, 11, 26)
MONTH = timedelta(days=30)
DEFAULT_TYPES = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
                 "rsa-sha2-512", "rsa-sha2-256"]


def ed25519_line() -> str:
    """A fresh public key line, made at run time (no key material in the source)."""
    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def ecdsa_line() -> str:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def with_key(value, line: str):
    """``value`` with every ``"KEY"`` placeholder replaced by ``line`` (one real key, made at run time)."""
    if value == "KEY":
        return line
    if isinstance(value, dict):
        return {k: with_key(v, line) for k, v in value.items()}
    if isinstance(value, list):
        return [with_key(v, line) for v in value]
    return value


def test_one_host_key_line_is_one_pin_without_an_end_date():
    line = ed25519_line()

    (pin,) = pins_from_extra({"host_key": line}, "connection 'c'")

    assert pin.line == line and pin.until is None and pin.key_type == "ssh-ed25519"
    assert pin.fingerprint.startswith("SHA256:") and pin.valid_on(date(2099, 1, 1))


def test_several_pins_each_with_an_optional_until_date():
    old, new = ed25519_line(), ecdsa_line()

    pins = pins_from_extra({"host_keys": [{"key": old, "until": "2026-12-31"}, {"key": new}]}, "connection 'c'")

    assert [(p.line, p.until) for p in pins] == [(old, date(2026, 12, 31)), (new, None)]


def test_a_pin_is_valid_through_its_until_day_and_not_after():
    pin = HostKeyPin(ed25519_line(), date(2026, 12, 31))

    assert pin.valid_on(date(2026, 12, 31)) and not pin.valid_on(date(2027, 1, 1))


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, "extra.host_key is missing"),
        ({"host_key": "ssh-ed25519 !!!"}, "extra.host_key is not a pinned public key line"),
        ({"host_keys": []}, "extra.host_key is missing"),
        ({"host_keys": "ssh-ed25519 AAAA"}, "extra.host_keys must be a list"),
        ({"host_keys": [{"key": "KEY", "untill": "2026-12-31"}]}, r"extra.host_keys\[0\]: must be"),
        ({"host_keys": [{"key": "KEY", "until": "31/12/2026"}]}, r"extra.host_keys\[0\]: until '31/12/2026' is not"),
        ({"host_keys": [{"until": "2026-12-31"}]}, r"extra.host_keys\[0\]: must be"),
        ({"host_keys": ["KEY", {"key": "not a key"}]}, r"extra.host_keys\[1\]: key is not a pinned public key"),
        ({"host_keys": ["KEY", "KEY"]}, r"extra.host_keys\[1\]: ssh-ed25519 SHA256:\S+ is pinned twice"),
        ({"host_key": "KEY", "host_keys": ["KEY"]}, "both extra.host_key and extra.host_keys are set"),
    ],
)
def test_a_pin_that_cannot_be_right_is_a_config_error_naming_the_connection_and_entry(extra, expected):
    extra = with_key(extra, ed25519_line())

    with pytest.raises(ConfigError, match=expected) as caught:
        pins_from_extra(extra, "connection 'syp_sftp'")

    assert "connection 'syp_sftp'" in str(caught.value)


def test_the_target_from_a_connection_pins_every_key_of_host_keys():
    old, new = ed25519_line(), ed25519_line()
    conn = ConnInfo("syp_sftp", "sftp", host="sftp.example", port=22, login="u",
                    extra={"host_keys": [{"key": old, "until": "2026-12-31"}, new]})
    recipient = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40)

    target = SftpTarget.from_connection(conn, recipient)

    assert [(p.line, p.until) for p in target.host_keys] == [(old, date(2026, 12, 31)), (new, None)]


def test_a_target_takes_host_key_or_host_keys_not_both():
    with pytest.raises(ConfigError, match="give host_key or host_keys, not both"):
        SftpTarget(host="h", port=22, username="u", host_key=ed25519_line(),
                   host_keys=(HostKeyPin(ed25519_line()),))
    with pytest.raises(ConfigError, match="no pinned host key"):
        SftpTarget(host="h", port=22, username="u")


def test_paramiko_is_asked_for_the_valid_pinned_types_first_then_expired_ones_then_the_rest():
    pins = [HostKeyPin(ed25519_line(), date(2026, 1, 1)), HostKeyPin(ecdsa_line())]

    assert host_key_algorithms(pins, DAY, DEFAULT_TYPES) == [
        "ecdsa-sha2-nistp256", "ssh-ed25519", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "rsa-sha2-512",
        "rsa-sha2-256"]


def test_an_rsa_pin_asks_for_sha2_signatures_only():
    rsa = paramiko.RSAKey.generate(2048)
    pins = [HostKeyPin(f"ssh-rsa {rsa.get_base64()}")]

    assert host_key_algorithms(pins, DAY, DEFAULT_TYPES)[:2] == ["rsa-sha2-512", "rsa-sha2-256"]
    assert "ssh-rsa" not in host_key_algorithms(pins, DAY, DEFAULT_TYPES)


def _offered(line: str) -> paramiko.PKey:
    return HostKeyPin(line).key


def test_the_policy_accepts_either_valid_pin_and_adds_nothing():
    old, new = ed25519_line(), ed25519_line()
    pins = (HostKeyPin(old, date(2026, 12, 31)), HostKeyPin(new))
    client = paramiko.SSHClient()

    for line in (old, new):
        policy = PinnedOnly("h:22", pins, DAY)
        policy.missing_host_key(client, "h", _offered(line))
        assert policy.matched is not None and policy.matched.line == line
    assert client.get_host_keys().keys() == []


def test_after_until_the_old_key_is_refused_naming_server_key_and_expired_pin():
    old, new = ed25519_line(), ed25519_line()
    pins = (HostKeyPin(old, date(2026, 12, 31)), HostKeyPin(new))
    policy = PinnedOnly("sftp.example:2222", pins, date(2027, 1, 1))

    with pytest.raises(HostKeyMismatch) as caught:
        policy.missing_host_key(paramiko.SSHClient(), "h", _offered(old))

    message = str(caught.value)
    assert "SFTP server sftp.example:2222: host key ssh-ed25519 " + pins[0].fingerprint in message
    assert "was pinned only until 2026-12-31" in message
    assert f"expired pins: ssh-ed25519 {pins[0].fingerprint} (until 2026-12-31)" in message
    assert f"the pinned one now is ssh-ed25519 {pins[1].fingerprint}" in message
    assert "AAAA" not in message  # fingerprints, never the key itself


def test_a_key_never_pinned_is_refused_naming_the_valid_pins():
    pinned, other = ed25519_line(), ecdsa_line()
    pins = (HostKeyPin(pinned),)

    message = mismatch("h:22", pins, _offered(other), DAY)

    assert f"host key ecdsa-sha2-nistp256 {_offered(other).fingerprint} is not the pinned ssh-ed25519" in message
    assert "expired" not in message


def test_pins_ending_within_30_days_are_warned_about_and_an_ended_one_is_to_be_removed():
    ending = HostKeyPin(ed25519_line(), date(2026, 12, 20))
    ended = HostKeyPin(ed25519_line(), date(2026, 11, 1))
    lasting = HostKeyPin(ed25519_line())

    notes = pin_warnings([ending, ended, lasting], DAY)

    assert notes == [f"pin ssh-ed25519 {ending.fingerprint} ends on 2026-12-20 (in 24 days)",
                     f"pin ssh-ed25519 {ended.fingerprint} ended on 2026-11-01: the server can no longer use it; "
                     "remove it from extra.host_keys"]
    assert pin_warnings([HostKeyPin(ed25519_line(), date(2027, 3, 1)), lasting], DAY) == []


def test_when_every_pin_ends_soon_the_warning_says_the_night_after_fails():
    only = HostKeyPin(ed25519_line(), date(2026, 12, 1))

    notes = pin_warnings([only], DAY)

    assert notes[-1].startswith("no pin is valid after 2026-12-01: pin the partner's next key")


def test_the_connection_warning_is_empty_when_its_pins_cannot_be_read():
    conns = {"good": ConnInfo("good", "sftp", extra={"host_keys": [{"key": ed25519_line(), "until": "2026-12-01"}]}),
             "bad": ConnInfo("bad", "sftp", extra={})}

    assert "ends on 2026-12-01 (in 5 days)" in connection_pin_warning(conns.__getitem__, "good", DAY, MONTH)
    assert connection_pin_warning(conns.__getitem__, "bad", DAY, MONTH) == ""
