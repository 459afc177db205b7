"""Keyed pseudonyms of identifiers, and the keys they are made with (invariant 3).

A pseudonym is the HMAC-SHA256 (hex) of the identifier's normalised form, so ``"943 476 5919"`` and
``"9434765919"`` match. :func:`derive_key` turns the agreement's secret into one HMAC key per
(linkage domain, key id), so two agreements only share pseudonyms when they declare the same linkage
domain, and a new key id gives new pseudonyms. No message here carries an identifier or key material;
:func:`key_fingerprint` is the only form of a key that may be shown or recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable

import pandas as pd

from transfers.errors import PrivacyError

# HMAC-SHA256 is only as strong as its key; anything shorter than 128 bits is a
# mistake (a placeholder or a truncated secret), not a key.
MIN_KEY_BYTES = 16

_WHITESPACE = re.compile(r"\s+")


def normalise_identifier(value: str) -> str:
    """Remove all whitespace and upper-case, so one person's identifier has one form."""
    return _WHITESPACE.sub("", value).upper()


def pseudonymise(value: str, key: bytes) -> str:
    """Keyed pseudonym of an identifier: HMAC-SHA256 of its normalised form, in hex.

    Stable across runs for one key, different for a different key, and not
    reversible or guessable without the key (unlike a plain hash, which anyone
    can compute for every possible NHS number).

    Args:
        value: the identifier, e.g. an NHS number (``"943 476 5919"``).
        key: the HMAC key (at least 16 bytes), from the agreement's key secret.

    Raises:
        PrivacyError: the key is missing or too short, or the identifier is
            empty once whitespace is removed.
    """
    _check_key(key)
    if not isinstance(value, str):
        raise PrivacyError(f"an identifier to pseudonymise must be text, not {type(value).__name__}")
    normal = normalise_identifier(value)
    if not normal:
        raise PrivacyError("an empty identifier cannot be pseudonymised")
    return hmac.digest(bytes(key), normal.encode("utf-8"), "sha256").hex()


def normalise_all(values: pd.Series) -> pd.Series:
    """:func:`normalise_identifier` of every value as text, in one pass; "" where a value is null or blank.

    Kept on Python strings (object dtype), whose whitespace and upper-casing are exactly
    :func:`normalise_identifier`'s; an Arrow string column would upper-case some letters
    differently and give another pseudonym.
    """
    column = values.astype(object)
    text = column.where(column.notna(), "")
    if pd.api.types.infer_dtype(text, skipna=False) != "string":
        text = text.map(str)  # an identifier read as a number is pseudonymised as its digits
    return text.str.replace(_WHITESPACE.pattern, "", regex=True).str.upper()


def digests(normalised: Iterable[str], key: bytes) -> list[bytes]:
    """HMAC-SHA256 of each normalised identifier (the raw digests of :func:`pseudonymise`).

    The key's inner and outer pads are hashed once and each value continues from
    copies of those two states (RFC 2104, the same output as ``hmac.digest``):
    ``hmac.digest`` pads and hashes the key again for every value, which made it
    half as fast on a million identifiers.
    """
    _check_key(key)
    raw = bytes(key)
    if len(raw) > _SHA256_BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(raw.translate(_IPAD)).copy
    outer = hashlib.sha256(raw.translate(_OPAD)).copy

    def one(value: str) -> bytes:
        first = inner()
        first.update(value.encode("utf-8"))
        second = outer()
        second.update(first.digest())
        return second.digest()

    return [one(value) for value in normalised]


_SHA256_BLOCK = 64
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes | bytearray) or len(key) < MIN_KEY_BYTES:
        raise PrivacyError(
            f"the pseudonymisation key must be at least {MIN_KEY_BYTES} bytes; "
            "check the secret named by the agreement's pseudonymisation.key_secret"
        )


def derive_key(secret: str | bytes, *, domain: str, key_id: str) -> bytes:
    """The HMAC key for one linkage domain and key id, from the agreement's secret.

    The domain is the agreement id unless agreements declare a shared linkage
    domain. Deriving (rather than using the secret itself) means one secret can
    serve several agreements without linking them, and a key id change is a new
    key even if the secret was not changed.
    """
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(raw) < MIN_KEY_BYTES:
        raise PrivacyError(
            f"the pseudonymisation secret for {domain!r} must be at least {MIN_KEY_BYTES} bytes; "
            "check the secret named by the agreement's pseudonymisation.key_secret"
        )
    label = f"isp-transfers/pseudonym/v1/{domain}/{key_id}".encode()
    return hmac.new(hashlib.sha256(raw).digest(), label, hashlib.sha256).digest()


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible tag of a key, so the ledger can show a rotation without the key."""
    return hmac.new(bytes(key), b"isp-transfers/key-fingerprint", hashlib.sha256).hexdigest()[:16]
