"""Key checks (``transfers.crypto.keys`` and ``checks``): partners' keys and our signing key are refused unless pinned and sound.

Every key is made by ``gpg`` at run time (as a partner would make it).
So each test that runs ``gpg`` is an integration test and carries the marker (STYLE rule 7);
the checks that need no ``gpg`` stay unmarked.
"""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.pgp_keys import make_key, make_signer, pgpy_protect
from transfers.crypto import (
    DECRYPTION_KEY_VAR,
    load_own_decryption_key,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    normalise_fingerprint,
    own_decryption_key,
    party_signing_key,
    sign_detached,
)
from transfers.devkit.gpg import signed_by
from transfers.errors import KeyRefused, SecretMissing

# --------------------------------------------------------------------------- key checks


@pytest.mark.integration
def test_a_key_that_is_not_the_pinned_one_is_refused_naming_the_file(gpg_home, tmp_path):
    pinned, _ = make_key(gpg_home, tmp_path, "pinned", algo="cv25519")
    other, other_path = make_key(gpg_home, tmp_path, "stranger", algo="cv25519")

    with pytest.raises(KeyRefused) as caught:
        load_recipient_key(other_path, pinned)

    message = str(caught.value)
    assert str(other_path) in message and pinned in message and other in message
    assert "BEGIN PGP" not in message


@pytest.mark.integration
def test_the_pinned_fingerprint_may_be_written_as_gpg_prints_it(gpg_partner):
    spaced = " ".join(gpg_partner.fingerprint[i : i + 4] for i in range(0, 40, 4)).lower()
    assert load_recipient_key(gpg_partner.public_key_path, spaced).fingerprint == gpg_partner.fingerprint


@pytest.mark.integration
def test_an_expired_key_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519", expire="1y", created=datetime(2020, 1, 1))

    with pytest.raises(KeyRefused, match=r"expired on 2020-12-3\d") as expired:
        load_recipient_key(path, fpr)
    assert not expired.value.revoked


@pytest.mark.integration
def test_a_key_expiring_within_the_margin_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519", expire="3d")

    with pytest.raises(KeyRefused, match="within the safety margin") as caught:
        load_recipient_key(path, fpr)
    assert str(path) in str(caught.value)
    # With no margin it is still usable today, and refused once `now` passes its expiry.
    assert load_recipient_key(path, fpr, margin=timedelta(0)).expires_at is not None
    with pytest.raises(KeyRefused, match="expired"):
        load_recipient_key(path, fpr, now=datetime.now(UTC) + timedelta(days=4), margin=timedelta(0))


@pytest.mark.integration
@pytest.mark.parametrize(("prefs", "why"), [
    ("CAST5 3DES SHA256 ZIP Uncompressed", r"cipher preferences \(CAST5, TripleDES\) do not include AES-256"),
    ("AES256 AES SHA1 ZIP Uncompressed", r"hash preferences \(SHA1\) include no SHA-2 hash"),
])
def test_a_key_preferring_only_old_ciphers_or_sha1_is_refused(gpg_home, tmp_path, prefs, why):
    # pgpy would encrypt with AES-256 anyway, to software that said it only reads CAST5/3DES.
    fpr = gpg_home.generate_key("Old Partner <old@example.invalid>", algo="cv25519")
    gpg_home.run("--command-fd", "0", "--edit-key", fpr, input=f"setpref {prefs}\ny\nsave\n".encode())
    path = gpg_home.export_public(fpr, tmp_path / "old.asc")

    with pytest.raises(KeyRefused, match=why) as caught:
        load_recipient_key(path, fpr)
    assert str(path) in str(caught.value) and "setpref" in str(caught.value)


@pytest.mark.integration
def test_an_expired_encryption_subkey_is_refused_even_if_the_primary_is_valid(gpg_home, tmp_path):
    fpr, path = make_key(
        gpg_home,
        tmp_path,
        algo="cv25519",
        expire="0",
        subkey_expire="1y",
        created=datetime.now(UTC) - timedelta(days=800),
    )

    with pytest.raises(KeyRefused, match=r"no usable encryption key \(subkey [0-9A-F]{40}: expired"):
        load_recipient_key(path, fpr)


@pytest.mark.integration
def test_a_revoked_key_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519")
    assert load_recipient_key(path, fpr)  # fine before the revocation
    gpg_home.revoke(fpr, path)

    with pytest.raises(KeyRefused, match="revoked") as caught:
        load_recipient_key(path, fpr)
    assert str(path) in str(caught.value)
    assert caught.value.revoked  # a security incident (transfers.incidents), not a key that merely aged


@pytest.mark.integration
def test_a_revoked_encryption_subkey_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519")
    gpg_home.revoke_subkey(fpr)
    gpg_home.export_public(fpr, path)

    with pytest.raises(KeyRefused, match=r"subkey [0-9A-F]{40}: revoked") as caught:
        load_recipient_key(path, fpr)
    assert caught.value.revoked


@pytest.mark.integration
@pytest.mark.parametrize(("algo", "why"), [("rsa2048", "RSA-2048"), ("dsa2048", "DSA")])
def test_weak_keys_are_refused(gpg_home, tmp_path, algo, why):
    fpr, path = make_key(gpg_home, tmp_path, algo=algo)

    with pytest.raises(KeyRefused, match=why) as caught:
        load_recipient_key(path, fpr)
    assert "RSA >= 3072" in str(caught.value)


@pytest.mark.integration
def test_a_key_without_an_encryption_subkey_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519", encryption_subkey=False)

    with pytest.raises(KeyRefused, match="no usable encryption key"):
        load_recipient_key(path, fpr)


def _packets(home, path: Path) -> list[tuple[int, int]]:
    """(offset, tag) of each packet in a binary OpenPGP file, as gpg reads it."""
    out = subprocess.run(
        ["gpg", "--homedir", str(home.path), "--batch", "--list-packets", str(path)], capture_output=True, text=True
    ).stdout
    return [(int(m[1]), int(m[2])) for m in re.finditer(r"# off=(\d+) ctb=\w+ tag=(\d+)", out)]


@pytest.mark.integration
@pytest.mark.parametrize("forge_issuer", [False, True], ids=["signed by the attacker", "claims the pinned issuer"])
def test_a_subkey_grafted_onto_the_pinned_key_is_not_used(gpg_home, tmp_path, forge_issuer):
    """Someone who can edit the key file must not be able to add their own encryption subkey."""
    pinned, _ = make_key(gpg_home, tmp_path, "pinned", algo="cv25519", encryption_subkey=False)
    attacker, attacker_path = make_key(gpg_home, tmp_path, "attacker", algo="cv25519")
    assert load_recipient_key(attacker_path, attacker)  # the subkey we graft is a usable one on its own
    pinned_bin = gpg_home.export_public(pinned, tmp_path / "pinned.gpg", armor=False)
    attacker_bin = gpg_home.export_public(attacker, tmp_path / "attacker.gpg", armor=False)
    start = next(off for off, tag in _packets(gpg_home, attacker_bin) if tag == 14)
    graft = attacker_bin.read_bytes()[start:]  # the attacker's public subkey + its binding signature
    if forge_issuer:
        # Make the binding name the pinned key as its issuer; only the signature maths can tell.
        graft = graft.replace(bytes.fromhex(attacker), bytes.fromhex(pinned))
        graft = graft.replace(bytes.fromhex(attacker[-16:]), bytes.fromhex(pinned[-16:]))
    grafted = tmp_path / "grafted.gpg"
    grafted.write_bytes(pinned_bin.read_bytes() + graft)

    with pytest.raises(KeyRefused, match="binding signature does not verify"):
        load_recipient_key(grafted, pinned)


@pytest.mark.integration
def test_the_key_does_not_print_its_material(gpg_partner):
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    assert "PGPKey" not in repr(key) and gpg_partner.fingerprint in repr(key)


@pytest.mark.integration
@pytest.mark.parametrize("text", ["", "ABC", "G" * 40, "A" * 41, "0x" + "A" * 38])
def test_a_malformed_fingerprint_is_refused(text, gpg_partner):
    with pytest.raises(ValueError, match="40 hex digits"):
        normalise_fingerprint(text)
    with pytest.raises(KeyRefused, match="pinned fingerprint"):
        load_recipient_key(gpg_partner.public_key_path, text)



# --------------------------------------------------------------------------- signing (issue 11)


@pytest.mark.integration
def test_a_private_key_that_is_not_the_pinned_one_is_refused_naming_both(gpg_home, tmp_path):
    pinned, _, _ = make_signer(gpg_home, tmp_path, "pinned")
    other, _, secret = make_signer(gpg_home, tmp_path, "other")

    with pytest.raises(KeyRefused) as caught:
        load_own_signing_key(secret, pinned)

    message = str(caught.value)
    assert pinned in message and other in message and "signing_fingerprint" in message
    assert "BEGIN PGP" not in message and "PRIVATE KEY" not in message


@pytest.mark.integration
def test_the_signing_key_secret_must_be_a_private_key(gpg_home, tmp_path):
    fpr, public, _ = make_signer(gpg_home, tmp_path)
    with pytest.raises(KeyRefused, match="holds a public key"):
        load_own_signing_key(public.read_text(), fpr)
    # A private key's armour around a body that is not a key: cut from a key made here, none kept in the repo.
    lines = gpg_home.export_secret(fpr).strip().splitlines()
    with pytest.raises(KeyRefused, match="not a readable OpenPGP private key") as caught:
        load_own_signing_key(f"{lines[0]}\n\nnot a key\n{lines[-1]}\n", fpr)
    assert "not a key" not in str(caught.value)


@pytest.mark.integration
def test_a_protected_signing_key_needs_its_passphrase(gpg_home, tmp_path):
    fpr = gpg_home.generate_key("locked <locked@example.invalid>", algo="cv25519", encryption_subkey=False)
    locked = pgpy_protect(gpg_home.export_secret(fpr), "s3cret-words")

    signer = load_own_signing_key(locked, fpr, passphrase="s3cret-words")
    data = tmp_path / "d"
    data.write_bytes(b"data")
    (tmp_path / "d.asc").write_text(sign_detached(b"data", signer))
    assert signed_by(gpg_home.verify_detached(tmp_path / "d.asc", data)) == fpr
    with pytest.raises(KeyRefused, match="passphrase secret does not unlock it") as caught:
        load_own_signing_key(locked, fpr, passphrase="wrong")
    assert "s3cret" not in str(caught.value) and "wrong" not in str(caught.value)


@pytest.mark.integration
def test_a_key_that_cannot_sign_is_refused_as_a_signing_key(gpg_home, tmp_path):
    # Primary certify-only, one encryption subkey: a fine encryption key, no signing key.
    fpr = gpg_home.generate_key("encrypt only <e@example.invalid>", algo="cv25519")
    gpg_home.run("--command-fd", "0", "--edit-key", fpr, input=b"change-usage\nS\nQ\nsave\n", check=False)
    public = gpg_home.export_public(fpr, tmp_path / "e.asc")
    flags = gpg_home.run("--with-colons", "--list-keys", fpr).stdout.decode().splitlines()[1].split(":")[11]
    if "s" in flags.split("S")[0]:  # this gpg cannot drop the primary's sign flag: use an RSA encrypt-only key
        pytest.skip("gpg did not change the primary key's usage")

    assert load_recipient_key(public, fpr).fingerprint == fpr
    with pytest.raises(KeyRefused, match="no usable signing key"):
        load_signing_key(public, fpr)
    with pytest.raises(KeyRefused, match="no usable signing key"):
        load_own_signing_key(gpg_home.export_secret(fpr), fpr)


@pytest.mark.integration
def test_an_expired_signing_key_is_refused(gpg_home, tmp_path):
    fpr, public, secret = make_signer(gpg_home, tmp_path, expire="1y", created=datetime(2020, 1, 1))

    with pytest.raises(KeyRefused, match=r"expired on 2020-12-3\d"):
        load_signing_key(public, fpr)
    with pytest.raises(KeyRefused, match=r"expired on 2020-12-3\d"):
        load_own_signing_key(secret, fpr)


@pytest.mark.integration
def test_a_signing_key_expiring_within_the_margin_is_refused(gpg_home, tmp_path):
    fpr, public, secret = make_signer(gpg_home, tmp_path, expire="3d")

    with pytest.raises(KeyRefused, match="within the safety margin"):
        load_signing_key(public, fpr)
    with pytest.raises(KeyRefused, match="within the safety margin"):
        load_own_signing_key(secret, fpr)


@pytest.mark.integration
def test_a_revoked_signing_key_is_refused(gpg_home, tmp_path):
    fpr, _, _ = make_signer(gpg_home, tmp_path)
    revoked = gpg_home.revoke(fpr, tmp_path / "revoked.asc")

    with pytest.raises(KeyRefused, match="revoked"):
        load_signing_key(revoked, fpr)
    with pytest.raises(KeyRefused, match="revoked"):
        load_own_signing_key(gpg_home.export_secret(fpr), fpr)


@pytest.mark.integration
def test_a_weak_signing_key_is_refused(gpg_home, tmp_path):
    fpr, public, secret = make_signer(gpg_home, tmp_path, algo="rsa2048")

    with pytest.raises(KeyRefused, match=r"RSA-2048 \(too short\)"):
        load_signing_key(public, fpr)
    with pytest.raises(KeyRefused, match=r"RSA-2048 \(too short\)"):
        load_own_signing_key(secret, fpr)


class _Register:
    """The Tier 1 register as ``party_signing_key`` reads it: a signatory per id, with its pin."""

    def __init__(self, **pins: str | None):
        self.pins = pins

    def signatory(self, party: str):
        from types import SimpleNamespace

        return SimpleNamespace(id=party, signing_fingerprint=self.pins[party]) if party in self.pins else None


@pytest.mark.integration
def test_a_partys_signing_key_is_the_secret_checked_against_that_partys_pin(gpg_home, tmp_path):
    pinned, _, secret = make_signer(gpg_home, tmp_path, "pinned")
    other, _, _ = make_signer(gpg_home, tmp_path, "other")
    secrets = {"transfers_signing_key": secret}

    def lookup(name: str) -> str:
        if name not in secrets:
            raise SecretMissing(f"secret {name!r} is not set")
        return secrets[name]

    register = _Register(**{"us": pinned, "them": other, "unpinned": None})
    assert party_signing_key(lookup, register, "us").fingerprint == pinned
    with pytest.raises(KeyRefused) as caught:
        party_signing_key(lookup, register, "them")
    assert caught.value.args[0].startswith("them: ") and pinned in str(caught.value) and other in str(caught.value)
    for party in ("unpinned", "nobody"):
        with pytest.raises(KeyRefused, match=f"{party}: no signing_fingerprint"):
            party_signing_key(lookup, register, party)
    del secrets["transfers_signing_key"]
    with pytest.raises(SecretMissing, match="transfers_signing_key"):  # named first, whatever else is wrong
        party_signing_key(lookup, register, "nobody")


# --------------------------------------------------------------------------- our decryption key (issue 11)


@pytest.mark.integration
def test_our_decryption_key_comes_from_its_secret_checked_against_the_recipient_pin(gpg_home, tmp_path):
    fpr, _ = make_key(gpg_home, tmp_path, "us", algo="cv25519")
    secrets = {DECRYPTION_KEY_VAR: gpg_home.export_secret(fpr)}

    def secret(name: str) -> str:
        if name not in secrets:
            raise SecretMissing(f"secret {name!r} is not set")
        return secrets[name]

    key = own_decryption_key(secret, "south-yorkshire-police", fpr)

    assert key.fingerprint == fpr and key.encryption_fingerprint == gpg_home.subkeys(fpr)[0]
    assert key.passphrase is None and "BEGIN PGP" not in repr(key)
    with pytest.raises(KeyRefused, match="south-yorkshire-police: no pgp_fingerprint"):
        own_decryption_key(secret, "south-yorkshire-police", None)
    secrets.clear()
    with pytest.raises(SecretMissing, match=DECRYPTION_KEY_VAR):
        own_decryption_key(secret, "south-yorkshire-police", fpr)


@pytest.mark.integration
def test_a_decryption_key_that_is_not_the_pinned_one_is_refused_naming_both(gpg_home, tmp_path):
    pinned, _ = make_key(gpg_home, tmp_path, "pinned", algo="cv25519")
    other, _ = make_key(gpg_home, tmp_path, "other", algo="cv25519")

    with pytest.raises(KeyRefused) as caught:
        load_own_decryption_key(gpg_home.export_secret(other), pinned)

    message = str(caught.value)
    assert pinned in message and other in message and "pgp_fingerprint" in message
    assert "BEGIN PGP" not in message and "PRIVATE KEY" not in message


@pytest.mark.integration
def test_a_decryption_key_is_refused_unless_private_able_to_decrypt_unexpired_and_unlocked(gpg_home, tmp_path):
    fpr, public = make_key(gpg_home, tmp_path, "us", algo="cv25519")
    sign_only, _, sign_only_secret = make_signer(gpg_home, tmp_path, "signer")
    expired, _ = make_key(gpg_home, tmp_path, "old", algo="cv25519", expire="1y", created=datetime(2020, 1, 1))
    locked = pgpy_protect(gpg_home.export_secret(fpr), "s3cret-words")

    with pytest.raises(KeyRefused, match="holds a public key"):
        load_own_decryption_key(public.read_text(), fpr)
    with pytest.raises(KeyRefused, match="no usable encryption key"):
        load_own_decryption_key(sign_only_secret, sign_only)
    with pytest.raises(KeyRefused, match=r"expired on 2020-12-3\d"):
        load_own_decryption_key(gpg_home.export_secret(expired), expired)
    with pytest.raises(KeyRefused, match="transfers_decryption_key_passphrase") as caught:
        load_own_decryption_key(locked, fpr, passphrase="wrong")
    assert "wrong" not in str(caught.value)
    assert load_own_decryption_key(locked, fpr, passphrase="s3cret-words").passphrase == "s3cret-words"
