"""Keyed pseudonyms and per-domain keys: HMAC, not a plain hash; one form per identifier; no secret echoed."""

from __future__ import annotations

import hashlib

import pytest

from transfers.errors import PrivacyError
from transfers.privacy import derive_key, key_fingerprint, pseudonymise

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
SECRET = "a-long-enough-test-secret-0123456789"


def test_pseudonyms_are_keyed_hmac_not_a_plain_hash():
    value = pseudonymise("9434765919", KEY)

    assert len(value) == 64 and int(value, 16) >= 0
    assert value != hashlib.sha256(b"9434765919").hexdigest()
    assert value != hashlib.sha256(KEY + b"9434765919").hexdigest()


def test_pseudonyms_are_stable_for_one_key_and_differ_per_key():
    assert pseudonymise("9434765919", KEY) == pseudonymise("9434765919", KEY)
    assert pseudonymise("9434765919", KEY) != pseudonymise("9434765919", OTHER_KEY)
    assert pseudonymise("9434765919", KEY) != pseudonymise("9434765920", KEY)


def test_identifiers_are_normalised_before_pseudonymising():
    expected = pseudonymise("9434765919", KEY)
    for form in ("943 476 5919", " 9434765919 ", "943\t476\n5919", "943 476  5919"):
        assert pseudonymise(form, KEY) == expected
    assert pseudonymise("ab123456c", KEY) == pseudonymise("AB 12 34 56 C", KEY)


def test_derived_keys_differ_by_domain_and_key_id_and_agree_on_a_shared_domain():
    a = derive_key(SECRET, domain="mash-referrals", key_id="k1")
    b = derive_key(SECRET, domain="other-agreement", key_id="k1")
    rotated = derive_key(SECRET, domain="mash-referrals", key_id="k2")
    shared = derive_key(SECRET, domain="mash-referrals", key_id="k1")
    nhs = "943 476 5919"
    assert pseudonymise(nhs, a) == pseudonymise(nhs, shared)
    assert len({pseudonymise(nhs, a), pseudonymise(nhs, b), pseudonymise(nhs, rotated)}) == 3
    assert key_fingerprint(a) != key_fingerprint(rotated)
    assert SECRET not in key_fingerprint(a)


def test_a_short_secret_is_refused_without_echoing_it():
    with pytest.raises(PrivacyError) as caught:
        derive_key("short", domain="d", key_id="k1")
    assert "short" not in str(caught.value).replace("shorter", "")


def _old_pseudonym(value: str, key: bytes) -> str:
    """The per-value form this module had before batches were pseudonymised at once."""
    import hmac
    import re

    return hmac.new(key, re.sub(r"\s+", "", value).upper().encode("utf-8"), hashlib.sha256).hexdigest()


def test_a_batch_normalises_and_pseudonymises_exactly_as_one_value_at_a_time():
    import random

    import pandas as pd

    from transfers.privacy.pseudonyms import digests, normalise_all, normalise_identifier

    rng = random.Random(14)
    odd = ["943 476 5919", "\u00a0943\u2003476\t5919\n", "straße", "ﬁx", "ǆ", "i̇", "", "   ", None, float("nan"), 9434765919]
    values = odd + [" ".join(str(rng.randrange(10**9, 10**10))) for _ in range(500)]
    normal = normalise_all(pd.Series(values, dtype=object))
    expected = ["" if v is None or v != v else normalise_identifier(str(v)) for v in values]
    assert normal.tolist() == expected
    assert [d.hex() for d in digests(normal[normal != ""], KEY)] == [
        _old_pseudonym(str(v), KEY) for v, n in zip(values, expected, strict=True) if n]
    assert pseudonymise("943 476 5919", KEY) == _old_pseudonym("943 476 5919", KEY)


@pytest.mark.parametrize("key", [KEY, b"s" * 16, b"long" * 40])
def test_batch_digests_are_hmac_sha256_for_any_key_length(key):
    import hmac

    from transfers.privacy.pseudonyms import digests

    assert digests(["9434765919", "", "ß"], key) == [hmac.new(key, v.encode(), hashlib.sha256).digest()
                                                     for v in ["9434765919", "", "ß"]]
