"""OpenPGP step against the real ``gpg``: what we encrypt, gpg decrypts; bad keys are refused.

Every key is made by ``gpg`` at run time (as a partner would make it); the
recipient that decrypts, and that must refuse a tampered file, is ``gpg`` too.
So each test that runs ``gpg`` is an integration test and carries the marker (STYLE rule 7);
the key-file checks that need no ``gpg`` stay unmarked.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from transfers import crypto
from transfers.crypto import (
    encrypt_to_file,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    normalise_fingerprint,
    sign_detached,
)
from transfers.devkit.gpg import GpgError, signed_by
from transfers.errors import KeyRefused

PAYLOAD = b"referral_id,nhs_number\nR000001,9434765919\n" + bytes(range(256)) * 64  # binary-safe too


def make_key(home, tmp_path: Path, name: str = "partner", **kwargs) -> tuple[str, Path]:
    fpr = home.generate_key(f"{name} <{name}@example.invalid>", **kwargs)
    return fpr, home.export_public(fpr, tmp_path / f"{name}.asc")


def encrypt(key_path: Path, fpr: str, tmp_path: Path, plaintext: bytes = PAYLOAD) -> Path:
    key = load_recipient_key(key_path, fpr)
    return encrypt_to_file(plaintext, key, tmp_path / "out.csv.pgp", filename="out.csv").path


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


# --------------------------------------------------------------------------- encryption


@pytest.mark.integration
@pytest.mark.parametrize("algo", ["cv25519", "rsa3072", "nistp256"])
def test_gpg_decrypts_what_we_encrypt(gpg_home, tmp_path, algo):
    fpr, key_path = make_key(gpg_home, tmp_path, algo=algo)
    key = load_recipient_key(key_path, fpr)
    result = encrypt_to_file(PAYLOAD, key, tmp_path / "out.csv.pgp", filename="out.csv")

    plaintext, status = gpg_home.decrypt_with_status(result.path)

    assert plaintext == PAYLOAD
    assert key.encryption_fingerprint in gpg_home.subkeys(fpr)  # the subkey, not the signing primary
    # DECRYPTION_INFO <mdc_method> <cipher>: 2 = integrity protected (SEIPD+MDC), 9 = AES-256.
    assert next(s for s in status if s.startswith("DECRYPTION_INFO")).split()[1:3] == ["2", "9"]
    assert "GOODMDC" in status
    assert any(s.startswith("PLAINTEXT ") and s.endswith(" out.csv") for s in status)


@pytest.mark.integration
def test_output_is_binary_seipd_written_0600_with_its_hash(gpg_partner, tmp_path):
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    result = encrypt_to_file(PAYLOAD, key, tmp_path / "out.csv.pgp", filename="out.csv")
    data = result.path.read_bytes()
    packets = subprocess.run(
        ["gpg", "--homedir", str(gpg_partner.home.path), "--batch", "--list-packets", str(result.path)],
        capture_output=True,
        text=True,
    ).stdout

    assert not data.startswith(b"-----BEGIN")  # binary, not armored
    assert result.size == len(data) and result.sha256 == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert re.search(r"tag=18 .*\n:encrypted data packet:\n(\t.*\n)*\tmdc_method: 2", packets), packets
    assert "tag=9 " not in packets  # never the old, unprotected SED packet
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


@pytest.mark.integration
def test_encrypting_again_replaces_the_file_atomically(gpg_partner, tmp_path):
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    dest = tmp_path / "out.csv.pgp"
    encrypt_to_file(b"first", key, dest, filename="out.csv")
    encrypt_to_file(b"second", key, dest, filename="out.csv")

    assert gpg_partner.home.decrypt(dest) == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv.pgp"]


@pytest.mark.integration
@pytest.mark.parametrize("where", ["middle", "last byte", "session key"])
def test_flipping_one_byte_makes_gpg_refuse_the_file(gpg_partner, tmp_path, where):
    path = encrypt(gpg_partner.public_key_path, gpg_partner.fingerprint, tmp_path, os.urandom(64 * 1024))
    size = path.stat().st_size
    assert gpg_partner.home.decrypt(path)  # the control: untouched, it decrypts
    flip(path, {"middle": size // 2, "last byte": size - 1, "session key": 40}[where])

    with pytest.raises(GpgError, match="refused"):
        gpg_partner.home.decrypt(path)


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

    with pytest.raises(KeyRefused, match=r"expired on 2020-12-3\d"):
        load_recipient_key(path, fpr)


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


@pytest.mark.integration
def test_a_revoked_encryption_subkey_is_refused(gpg_home, tmp_path):
    fpr, path = make_key(gpg_home, tmp_path, algo="cv25519")
    gpg_home.revoke_subkey(fpr)
    gpg_home.export_public(fpr, path)

    with pytest.raises(KeyRefused, match=r"subkey [0-9A-F]{40}: revoked"):
        load_recipient_key(path, fpr)


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
    huge.write_bytes(b"x" * (crypto.MAX_KEY_BYTES + 1))
    with pytest.raises(KeyRefused, match="too large"):
        load_recipient_key(huge, "A" * 40)


@pytest.mark.integration
def test_a_parse_that_does_not_finish_in_time_is_refused(gpg_partner, monkeypatch):
    def slow_parse(data):  # stands in for a pathological input
        time.sleep(3)

    monkeypatch.setattr(crypto, "PARSE_TIMEOUT_SECONDS", 0.2)
    monkeypatch.setattr(crypto.pgpy.PGPKey, "from_blob", staticmethod(slow_parse))
    started = time.monotonic()

    with pytest.raises(KeyRefused, match="longer than 0.2s"):
        load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)
    assert time.monotonic() - started < 2


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


def make_signer(home, tmp_path: Path, name: str = "sender", **kwargs) -> tuple[str, Path, str]:
    """A sender's sign-only key pair made by gpg: (fingerprint, public key file, armoured private key)."""
    kwargs.setdefault("algo", "cv25519")
    fpr = home.generate_key(f"{name} <{name}@example.invalid>", encryption_subkey=False, **kwargs)
    return fpr, home.export_public(fpr, tmp_path / f"{name}-signing.asc"), home.export_secret(fpr)


@pytest.mark.integration
@pytest.mark.parametrize("algo", ["cv25519", "rsa3072"])
def test_a_signed_part_decrypts_with_gpg_showing_a_good_signature_from_the_pinned_key(gpg_home, tmp_path, algo):
    fpr, key_path = make_key(gpg_home, tmp_path, algo="cv25519")
    signer_fpr, _, secret = make_signer(gpg_home, tmp_path, algo=algo)
    signer = load_own_signing_key(secret, signer_fpr)
    result = encrypt_to_file(PAYLOAD, load_recipient_key(key_path, fpr), tmp_path / "out.csv.pgp",
                             filename="out.csv", signer=signer)

    plaintext, status = gpg_home.decrypt_with_status(result.path)

    assert plaintext == PAYLOAD
    assert signed_by(status) == signer_fpr
    assert next(s for s in status if s.startswith("DECRYPTION_INFO")).split()[1:3] == ["2", "9"]
    assert signer.private and signer.fingerprint == signer_fpr and "BEGIN PGP" not in repr(signer)


@pytest.mark.integration
def test_sign_encrypt_round_trip_with_pgpy(gpg_home, tmp_path):
    import pgpy

    fpr, key_path = make_key(gpg_home, tmp_path, algo="cv25519")
    recipient_secret, _ = pgpy.PGPKey.from_blob(gpg_home.export_secret(fpr))
    signer_fpr, signer_public, secret = make_signer(gpg_home, tmp_path)
    signer = load_own_signing_key(secret, signer_fpr)
    out = encrypt_to_file(PAYLOAD, load_recipient_key(key_path, fpr), tmp_path / "out.csv.pgp", filename="out.csv",
                          signer=signer)

    message = recipient_secret.decrypt(pgpy.PGPMessage.from_file(str(out.path)))
    public = load_signing_key(signer_public, signer_fpr)

    assert bytes(message.message) == PAYLOAD
    assert public.key.verify(message)
    assert {s.signer for s in message.signatures} == {public.signing_key.fingerprint.keyid}


@pytest.mark.integration
def test_a_detached_signature_verifies_with_gpg(gpg_home, tmp_path):
    signer_fpr, _, secret = make_signer(gpg_home, tmp_path)
    data = tmp_path / "x.manifest.json"
    data.write_bytes(b'{"rows": 3}')
    sig = tmp_path / "x.manifest.json.asc"
    sig.write_text(sign_detached(data.read_bytes(), load_own_signing_key(secret, signer_fpr)))

    assert sig.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    assert signed_by(gpg_home.verify_detached(sig, data)) == signer_fpr
    data.write_bytes(b'{"rows": 4}')
    with pytest.raises(GpgError):
        gpg_home.verify_detached(sig, data)


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
    with pytest.raises(KeyRefused, match="not a readable OpenPGP private key") as caught:
        load_own_signing_key("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nnot a key\n", fpr)
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


def pgpy_protect(armored: str, passphrase: str) -> str:
    import pgpy
    from pgpy.constants import HashAlgorithm, SymmetricKeyAlgorithm

    key, _ = pgpy.PGPKey.from_blob(armored)
    key.protect(passphrase, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
    return str(key)


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
