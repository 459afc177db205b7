"""Signing and encrypting (``transfers.crypto.message``) against the real ``gpg``: what we encrypt, gpg decrypts.

Every key is made by ``gpg`` at run time (as a partner would make it); the recipient that decrypts,
and that must refuse a tampered file, and the verifier of our signatures are ``gpg`` too.
So each test that runs ``gpg`` is an integration test and carries the marker (STYLE rule 7);
the checks that need no ``gpg`` stay unmarked.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess

import pytest

from tests.support.pgp_keys import PAYLOAD, encrypt, flip, make_key, make_signer
from transfers.crypto import (
    encrypt_to_file,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    sign_detached,
)
from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.devkit.gpg import GpgError, signed_by
from transfers.errors import EncryptionFailed

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


@pytest.mark.integration
@pytest.mark.parametrize(("compression", "level", "packet"), [
    ("none", 1, None), ("zip", 1, "algo=1"), ("zlib", 1, "algo=2"), ("zip", 9, "algo=1")])
def test_each_compression_decrypts_with_gpg_with_a_good_signature(gpg_home, tmp_path, compression, level, packet):
    fpr, key_path = make_key(gpg_home, tmp_path, algo="cv25519")
    signer_fpr, _, secret = make_signer(gpg_home, tmp_path)
    plaintext = PAYLOAD * 50  # compressible, so a compressed packet is smaller
    result = encrypt_to_file(plaintext, load_recipient_key(key_path, fpr), tmp_path / "out.csv.pgp",
                             filename="out.csv", signer=load_own_signing_key(secret, signer_fpr),
                             compression=compression, level=level)

    decrypted, status = gpg_home.decrypt_with_status(result.path)
    packets = gpg_home.run("--list-packets", str(result.path)).stdout.decode()

    assert decrypted == plaintext
    assert signed_by(status) == signer_fpr
    assert "GOODMDC" in status
    assert any(s.startswith("PLAINTEXT ") and s.endswith(" out.csv") for s in status)
    if packet is None:
        assert ":compressed packet:" not in packets
        assert result.size > len(plaintext)
    else:
        assert f":compressed packet: {packet}" in packets
        assert result.size < len(plaintext) // 2


@pytest.mark.parametrize(("compression", "level"), [("bzip2", 1), ("zip", 0), ("zlib", 10)])
def test_an_unknown_compression_or_level_is_refused_before_anything_is_written(tmp_path, compression, level):
    with pytest.raises(EncryptionFailed, match=r"out\.csv\.pgp: compression .* is not one of none, zip, zlib"):
        encrypt_to_file(PAYLOAD, None, tmp_path / "out.csv.pgp", filename="out.csv", compression=compression,
                        level=level)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- signing (issue 11)


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

    public = load_signing_key(signer_public, signer_fpr)
    with quiet_pgpy():
        message = recipient_secret.decrypt(pgpy.PGPMessage.from_file(str(out.path)))
        verified = public.key.verify(message)

    assert bytes(message.message) == PAYLOAD
    assert verified
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
