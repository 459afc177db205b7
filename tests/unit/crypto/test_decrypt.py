"""Opening a delivery made for us (``transfers.crypto.decrypt``): only our key, integrity protected, the pinned signer.

Messages are made by our sender code (``encrypt_to_file(..., signer=)``) and by the real ``gpg``;
every key is made by ``gpg`` at run time, so each test is an integration test (STYLE rule 7).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pgp_keys import PAYLOAD, flip, make_key, make_signer
from transfers.crypto import (
    decrypt_verified,
    encrypt_to_file,
    load_own_decryption_key,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    sign_detached,
    signature_issuer,
)
from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.errors import DeliveryRejected

pytestmark = pytest.mark.integration


@pytest.fixture
def parties(gpg_home, tmp_path):
    """Us (a recipient key pair), the pinned sender (sign-only) and a stranger who can also sign."""
    us, us_public = make_key(gpg_home, tmp_path, "us", algo="cv25519")
    sender, sender_public, sender_secret = make_signer(gpg_home, tmp_path, "sender")
    stranger, _, stranger_secret = make_signer(gpg_home, tmp_path, "stranger")
    return {
        "us": us,
        "sender": sender,
        "stranger": stranger,
        "recipient": load_recipient_key(us_public, us),
        "own": load_own_decryption_key(gpg_home.export_secret(us), us),
        "signer": load_own_signing_key(sender_secret, sender),
        "pinned": load_signing_key(sender_public, sender),
        "stranger_signer": load_own_signing_key(stranger_secret, stranger),
    }


def _ours(parties, tmp_path: Path, plaintext: bytes = PAYLOAD, *, signer: str | None = "signer") -> bytes:
    out = encrypt_to_file(plaintext, parties["recipient"], tmp_path / "part.csv.pgp", filename="part.csv",
                          signer=parties[signer] if signer else None)
    return out.path.read_bytes()


def _gpg(home, tmp_path: Path, *args: str) -> bytes:
    source, dest = tmp_path / "plain.csv", tmp_path / "gpg.pgp"
    source.write_bytes(PAYLOAD)
    home.run("--trust-model", "always", "--output", str(dest), *args, str(source))
    return dest.read_bytes()


def _rejected(data: bytes, parties, **kwargs) -> str:
    with pytest.raises(DeliveryRejected) as caught:
        decrypt_verified(data, parties["own"], parties["pinned"], where="x_part001of002.csv.pgp", **kwargs)
    reason = caught.value.reason
    assert reason.startswith("x_part001of002.csv.pgp: ") and "BEGIN PGP" not in reason
    # A failed signature is tagged as such (a security incident at the recipient); no other check is.
    signature = ("signed by", "unsigned", "does not verify", "not an OpenPGP signature", "document signature")
    assert caught.value.kind == ("signature" if any(w in reason for w in signature) else "check"), reason
    assert "R000001" not in reason  # never content
    return reason


def test_what_our_sender_signs_and_encrypts_opens_to_the_same_bytes(parties, tmp_path):
    assert decrypt_verified(_ours(parties, tmp_path), parties["own"], parties["pinned"], where="p") == PAYLOAD


@pytest.mark.parametrize("compression", ["none", "zip", "zlib"])
def test_every_compression_our_sender_may_use_opens_to_the_same_bytes(parties, tmp_path, compression):
    out = encrypt_to_file(PAYLOAD, parties["recipient"], tmp_path / "part.csv.pgp", filename="part.csv",
                          signer=parties["signer"], compression=compression)
    assert decrypt_verified(out.path.read_bytes(), parties["own"], parties["pinned"], where="p") == PAYLOAD


@pytest.mark.parametrize("compression", ["none", "zip", "zlib", "bzip2"])
def test_a_message_gpg_compressed_either_way_opens(gpg_home, parties, tmp_path, compression):
    data = _gpg(gpg_home, tmp_path, "--compress-algo", compression, "--local-user", parties["sender"],
                "--recipient", parties["us"], "--sign", "--encrypt")
    assert decrypt_verified(data, parties["own"], parties["pinned"], where="p") == PAYLOAD


def test_a_message_gpg_signed_with_the_pinned_key_and_encrypted_to_us_opens(gpg_home, parties, tmp_path):
    data = _gpg(gpg_home, tmp_path, "--local-user", parties["sender"], "--recipient", parties["us"],
                "--sign", "--encrypt")
    assert decrypt_verified(data, parties["own"], parties["pinned"], where="p") == PAYLOAD


@pytest.mark.parametrize("data", [b"", b"referral_id,nhs_number\nR1,9434765919\n", bytes(range(256)) * 4,
                                  b"-----BEGIN PGP MESSAGE-----\n\nnot armour\n-----END PGP MESSAGE-----\n"])
def test_what_is_not_an_openpgp_message_is_rejected(parties, data):
    assert _rejected(data, parties).endswith("not an OpenPGP message")


def test_a_signed_but_unencrypted_message_is_rejected(gpg_home, parties, tmp_path):
    data = _gpg(gpg_home, tmp_path, "--local-user", parties["sender"], "--sign")
    assert "not an encrypted OpenPGP message" in _rejected(data, parties)


def test_a_message_encrypted_to_another_key_is_rejected_naming_ours(gpg_home, parties, tmp_path):
    other, other_public = make_key(gpg_home, tmp_path, "other", algo="cv25519")
    out = encrypt_to_file(PAYLOAD, load_recipient_key(other_public, other), tmp_path / "o.pgp", filename="o.csv",
                          signer=parties["signer"])

    reason = _rejected(out.path.read_bytes(), parties)

    assert f"not encrypted to our key {parties['us']}" in reason
    assert gpg_home.subkeys(other)[0][-16:] in reason  # the key id it was encrypted to


def test_a_passphrase_only_message_is_not_encrypted_to_our_key(gpg_home, parties, tmp_path):
    data = _gpg(gpg_home, tmp_path, "--passphrase", "words", "--cipher-algo", "AES256", "--symmetric")
    assert "not encrypted to our key" in _rejected(data, parties)


def test_a_message_without_integrity_protection_is_refused_unread(gpg_home, parties, tmp_path):
    # gpg --rfc2440 writes the old SED packet (no MDC), which an attacker can modify undetected.
    data = _gpg(gpg_home, tmp_path, "--rfc2440", "--cipher-algo", "AES256", "--local-user", parties["sender"],
                "--recipient", parties["us"], "--sign", "--encrypt")
    assert "not integrity-protected" in _rejected(data, parties)


def test_a_tampered_message_does_not_decrypt(parties, tmp_path):
    path = tmp_path / "part.csv.pgp"
    _ours(parties, tmp_path, bytes(range(256)) * 256)
    flip(path, path.stat().st_size // 2)
    assert "does not decrypt" in _rejected(path.read_bytes(), parties)


def test_an_unsigned_part_is_rejected_from_our_encryption_and_from_gpg(gpg_home, parties, tmp_path):
    assert "unsigned" in _rejected(_ours(parties, tmp_path, signer=None), parties)
    assert "unsigned" in _rejected(_gpg(gpg_home, tmp_path, "--recipient", parties["us"], "--encrypt"), parties)


def test_a_part_signed_by_another_key_is_rejected_naming_both(gpg_home, parties, tmp_path):
    ours = _rejected(_ours(parties, tmp_path, signer="stranger_signer"), parties, party="cs")
    theirs = _rejected(_gpg(gpg_home, tmp_path, "--local-user", parties["stranger"], "--recipient", parties["us"],
                            "--sign", "--encrypt"), parties)

    assert f"signed by key {parties['stranger'][-16:]}, not cs's pinned signing key {parties['sender']}" in ours
    assert f"signed by key {parties['stranger'][-16:]}, not the sender's pinned signing key" in theirs


def _signed_over(parties, signed: bytes, carried: bytes, tmp_path: Path, **sign_args) -> bytes:
    """A message carrying ``carried`` with the pinned sender's signature over ``signed``, encrypted to us."""
    import pgpy
    from pgpy.constants import SymmetricKeyAlgorithm

    with quiet_pgpy():
        signature = parties["signer"].signing_key.sign(pgpy.PGPMessage.new(signed, format="b"), **sign_args)
        message = pgpy.PGPMessage.new(carried, format="b")
        message |= signature
        encrypted = parties["recipient"].encryption_key.encrypt(message, cipher=SymmetricKeyAlgorithm.AES256)
    return bytes(encrypted)


def test_a_signature_by_the_pinned_key_over_other_bytes_does_not_verify(parties, tmp_path):
    data = _signed_over(parties, PAYLOAD, PAYLOAD.replace(b"9434765919", b"9434765920"), tmp_path)
    assert "does not verify" in _rejected(data, parties)


def test_a_sha1_signature_is_not_accepted(parties, tmp_path):
    from pgpy.constants import HashAlgorithm

    data = _signed_over(parties, PAYLOAD, PAYLOAD, tmp_path, hash=HashAlgorithm.SHA1)
    assert "SHA1" in _rejected(data, parties)


def test_a_protected_decryption_key_opens_with_its_passphrase(gpg_home, parties, tmp_path):
    from tests.support.pgp_keys import pgpy_protect

    locked = pgpy_protect(gpg_home.export_secret(parties["us"]), "s3cret-words")
    own = load_own_decryption_key(locked, parties["us"], passphrase="s3cret-words")

    assert decrypt_verified(_ours(parties, tmp_path), own, parties["pinned"], where="p") == PAYLOAD


def test_signature_issuer_names_the_key_id_of_a_detached_signature_or_none(parties):
    signature = sign_detached(b"manifest", parties["signer"])

    assert signature_issuer(signature) == parties["pinned"].signing_key.fingerprint.keyid
    assert signature_issuer("not a signature") is None
