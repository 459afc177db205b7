"""SSH client keys as a connection gives them: OpenSSH private key text, encrypted with a passphrase."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def encrypted_openssh(private: PrivateKeyTypes, passphrase: str) -> bytes:
    """``private`` in OpenSSH's format, encrypted with ``passphrase`` (as ``ssh-keygen -p`` leaves it)."""
    return private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
