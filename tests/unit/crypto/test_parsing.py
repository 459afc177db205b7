"""Reading key files (``transfers.crypto.parsing``): size and time limits, several keys, binary or armoured.

Every key is made by ``gpg`` at run time (as a partner would make it).
So each test that runs ``gpg`` is an integration test and carries the marker (STYLE rule 7);
the checks that need no ``gpg`` stay unmarked.
"""

from __future__ import annotations

import os
import threading
import time
import warnings

import pytest

from tests.support.pgp_keys import PAYLOAD, encrypt, make_key
from transfers.crypto import (
    load_recipient_key,
    parsing,
)
from transfers.errors import KeyRefused

# --------------------------------------------------------------------------- key files


@pytest.mark.parametrize("content", [b"", b"not a key at all\n" * 10, b"\x99\x01\x0d" + os.urandom(300)])
def test_a_file_that_is_not_a_key_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "partner.asc"
    path.write_bytes(content)

    with pytest.raises(KeyRefused, match="not a readable OpenPGP public key") as caught:
        load_recipient_key(path, "A" * 40)
    assert str(path) in str(caught.value)


def test_a_missing_or_huge_key_file_is_refused(tmp_path, monkeypatch):
    with pytest.raises(KeyRefused, match="cannot be read"):
        load_recipient_key(tmp_path / "absent.asc", "A" * 40)
    huge = tmp_path / "huge.asc"
    huge.write_bytes(b"x" * (parsing.MAX_KEY_BYTES + 1))
    with pytest.raises(KeyRefused, match="too large"):
        load_recipient_key(huge, "A" * 40)


@pytest.mark.integration
def test_a_parse_that_does_not_finish_in_time_is_refused(gpg_partner, monkeypatch):
    def slow_parse(data):  # stands in for a pathological input
        time.sleep(3)

    monkeypatch.setattr(parsing, "PARSE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(parsing.pgpy.PGPKey, "from_blob", staticmethod(slow_parse))
    started = time.monotonic()

    with pytest.raises(KeyRefused, match="longer than 0.2s"):
        load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    assert time.monotonic() - started < 2



@pytest.mark.integration
def test_a_parse_that_ends_after_its_limit_leaves_the_warning_filters_set_meanwhile(gpg_partner, monkeypatch):
    """Warning filters are process-wide: a parse given up on must not restore them when it finally ends."""
    monkeypatch.setattr(parsing, "PARSE_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setattr(parsing.pgpy.PGPKey, "from_blob", staticmethod(lambda data: time.sleep(0.5)))

    with warnings.catch_warnings():
        with pytest.raises(KeyRefused, match="longer than"):
            load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
        warnings.filterwarnings("error", message="set while a parse was still running")
        for thread in [t for t in threading.enumerate() if t.name == "pgp-parse"]:
            thread.join(5)

        assert any(f[1] is not None and f[1].pattern == "set while a parse was still running" for f in warnings.filters)

@pytest.mark.integration
def test_a_private_key_file_is_refused_without_quoting_it(gpg_home, tmp_path):
    fpr, _ = make_key(gpg_home, tmp_path, algo="cv25519")
    secret = tmp_path / "partner-secret.asc"
    gpg_home.run("--armor", "--output", str(secret), "--export-secret-keys", fpr)

    with pytest.raises(KeyRefused, match="PRIVATE key") as caught:
        load_recipient_key(secret, fpr)
    assert "BEGIN PGP" not in str(caught.value)


@pytest.mark.integration
def test_a_file_with_two_keys_uses_the_pinned_one_and_refuses_any_other_pin(gpg_home, tmp_path):
    # A partner's file holds its encryption and its signing key (issue 11): the pin selects one.
    first, _ = make_key(gpg_home, tmp_path, "one", algo="cv25519")
    second, _ = make_key(gpg_home, tmp_path, "two", algo="cv25519")
    third, _ = make_key(gpg_home, tmp_path, "three", algo="cv25519")
    both = tmp_path / "both.asc"
    gpg_home.run("--armor", "--output", str(both), "--export", first, second)

    assert load_recipient_key(both, first).fingerprint == first
    assert load_recipient_key(both, second).fingerprint == second
    with pytest.raises(KeyRefused, match=f"holds 2 keys .*none of them the pinned {third}"):
        load_recipient_key(both, third)


@pytest.mark.integration
def test_a_file_made_by_appending_armoured_keys_is_read_whole(gpg_home, tmp_path):
    # A partner's encryption key file with its signing key appended (cat a.asc b.asc > partner.asc).
    first, first_path = make_key(gpg_home, tmp_path, "one", algo="cv25519")
    second, second_path = make_key(gpg_home, tmp_path, "two", algo="cv25519")
    both = tmp_path / "both.asc"
    both.write_text(first_path.read_text() + second_path.read_text())

    assert load_recipient_key(both, first).fingerprint == first
    assert load_recipient_key(both, second).fingerprint == second


@pytest.mark.integration
def test_a_binary_key_file_is_accepted(gpg_partner, tmp_path):
    binary = gpg_partner.home.export_public(gpg_partner.fingerprint, tmp_path / "partner.gpg", armor=False)
    key = load_recipient_key(binary, gpg_partner.fingerprint)
    assert key.algorithm == "RSA-3072"
    assert gpg_partner.home.decrypt(encrypt(binary, gpg_partner.fingerprint, tmp_path)) == PAYLOAD
