"""pgpy's warnings (``transfers.crypto.pgpy_warnings``): its own notes and known deprecations dropped, others passed on.

The round trip uses a key pgpy makes itself (no ``gpg``), so these tests are unit tests.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pgpy
import pytest
from cryptography.utils import CryptographyDeprecationWarning
from pgpy.constants import HashAlgorithm, KeyFlags, PubKeyAlgorithm, SymmetricKeyAlgorithm

from transfers.crypto.pgpy_warnings import PGPY_DEPRECATIONS, quiet_pgpy


@pytest.fixture(scope="module")
def pgpy_key():
    with quiet_pgpy():
        key = pgpy.PGPKey.new(PubKeyAlgorithm.RSAEncryptOrSign, 2048)
        key.add_uid(pgpy.PGPUID.new("t", email="t@example.invalid"), hashes=[HashAlgorithm.SHA512],
                    usage={KeyFlags.Sign, KeyFlags.EncryptCommunications}, ciphers=[SymmetricKeyAlgorithm.AES256])
    return key


def _round_trip(key) -> None:
    """What the project asks of pgpy on every delivery: sign, encrypt, decrypt, verify."""
    message = pgpy.PGPMessage.new(b"referral_id\nR000001\n", format="b")
    message |= key.sign(message, hash=HashAlgorithm.SHA512)
    opened = key.decrypt(key.pubkey.encrypt(message, cipher=SymmetricKeyAlgorithm.AES256))
    assert opened.message == bytearray(b"referral_id\nR000001\n")
    assert key.pubkey.verify(opened)


def _everything_warned(block) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        block()
    return caught


def test_the_suite_turns_a_cryptography_deprecation_into_an_error():
    with pytest.raises(CryptographyDeprecationWarning):
        warnings.warn("something is deprecated", CryptographyDeprecationWarning, stacklevel=1)


def test_pgpy_reaches_exactly_the_deprecated_names_we_let_it(pgpy_key):
    caught = _everything_warned(lambda: _round_trip(pgpy_key))
    deprecations = [w for w in caught if issubclass(w.category, CryptographyDeprecationWarning)]
    moved = {re.match(r"(\w+) has been moved", str(w.message)).group(1) for w in deprecations}

    # Fewer means pgpy stopped using one (drop it from the list); more, a new deprecation to deal with.
    assert moved == PGPY_DEPRECATIONS
    assert all("pgpy" in Path(w.filename).parts for w in deprecations)


def test_a_round_trip_inside_quiet_pgpy_warns_nothing(pgpy_key):
    def quiet_round_trip():
        with quiet_pgpy():
            _round_trip(pgpy_key)

    assert [str(w.message) for w in _everything_warned(quiet_round_trip)] == []


def test_pgpys_own_notes_are_dropped(pgpy_key):
    message = pgpy.PGPMessage.new(b"x", format="b")
    with quiet_pgpy():
        message |= pgpy_key.sign(message, hash=HashAlgorithm.SHA512)

    def quiet_verify():
        with quiet_pgpy():
            pgpy_key.pubkey.verify(message)

    loud = _everything_warned(lambda: pgpy_key.pubkey.verify(message))

    assert any(w.category is UserWarning and str(w.message).startswith("TODO: ") for w in loud)
    assert _everything_warned(quiet_verify) == []


@pytest.mark.parametrize(("message", "filename"), [
    ("OFB has been moved to cryptography.hazmat.decrepit.ciphers.modes.OFB", "/site-packages/pgpy/symenc.py"),
    ("CFB has been moved to cryptography.hazmat.decrepit.ciphers.modes.CFB", "/work/transfers/staging.py"),
    ("signer() is deprecated", "/site-packages/pgpy/pgp.py"),
])
def test_any_other_cryptography_deprecation_reaches_the_caller(message, filename):
    def warn_inside():
        with quiet_pgpy():
            warnings.warn_explicit(message, CryptographyDeprecationWarning, filename, 1)

    caught = _everything_warned(warn_inside)

    assert [(str(w.message), w.category, w.filename) for w in caught] == [
        (message, CryptographyDeprecationWarning, filename)]


def test_a_warning_of_another_kind_reaches_the_caller():
    def warn_inside():
        with quiet_pgpy():
            warnings.warn("ours", DeprecationWarning, stacklevel=1)

    assert [(str(w.message), w.category) for w in _everything_warned(warn_inside)] == [("ours", DeprecationWarning)]
