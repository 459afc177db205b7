"""OpenPGP keys and payloads made at run time by ``gpg`` for the crypto tests.

Shared by the tests of ``tests/unit/crypto/`` and of the documents a recipient returns (receipts,
certificates, notice confirmations), so it lives here rather than in one test file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from transfers.crypto import encrypt_to_file, load_recipient_key

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


def make_signer(home, tmp_path: Path, name: str = "sender", **kwargs) -> tuple[str, Path, str]:
    """A sender's sign-only key pair made by gpg: (fingerprint, public key file, armoured private key)."""
    kwargs.setdefault("algo", "cv25519")
    fpr = home.generate_key(f"{name} <{name}@example.invalid>", encryption_subkey=False, **kwargs)
    return fpr, home.export_public(fpr, tmp_path / f"{name}-signing.asc"), home.export_secret(fpr)


def pgpy_protect(armored: str, passphrase: str) -> str:
    import pgpy
    from pgpy.constants import HashAlgorithm, SymmetricKeyAlgorithm

    from transfers.crypto.pgpy_warnings import quiet_pgpy

    with quiet_pgpy():
        key, _ = pgpy.PGPKey.from_blob(armored)
        key.protect(passphrase, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
        return str(key)


def recipient_and_stranger(base: Path, *, expire: str = "1y") -> dict[str, tuple[str, Path, str]]:
    """Two sign-only keys made by the real gpg: the recipient whose returned documents are verified, and a
    stranger who signs what must not count. Each is (fingerprint, public key file, private armour)."""
    from tests.conftest import require_part

    require_part("gpg", shutil.which("gpg") is not None, "install it with: apt-get install -y gnupg")
    from transfers.devkit.gpg import GpgHome

    with GpgHome(base / "gnupg") as home:
        made = {}
        for name in ("recipient", "stranger"):
            fpr = home.generate_key(f"{name} <{name}@example.invalid>", algo="cv25519", encryption_subkey=False,
                                    expire=expire)
            made[name] = (fpr, home.export_public(fpr, base / f"{name}.asc"), home.export_secret(fpr))
        return made
