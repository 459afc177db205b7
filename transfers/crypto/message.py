"""Sign and encrypt a delivery to a checked key: the encrypted file and the manifest's detached signature.

- ``encrypt_to_file`` encrypts bytes with AES-256 in an integrity-protected
  packet (SEIPD with MDC) to a ``RecipientKey`` and writes the binary message
  atomically; given a signer, the literal data is signed first, inside the same
  message, which is then compressed as asked (``COMPRESSIONS``). A guard refuses
  any other packet type (``EncryptionFailed``), so a library change cannot
  silently fall back to the malleable SED packet.
- ``sign_detached`` makes an armoured detached signature (the manifest's, an agreement's sign-off);
  ``verify_detached`` checks one against a partner's checked signing key.

Only our own private key (``SigningKey.private``) signs; a partner's is refused.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pgpy
from pgpy.constants import CompressionAlgorithm, HashAlgorithm, SymmetricKeyAlgorithm
from pgpy.packet.packets import IntegrityProtectedSKEDataV1

from transfers.crypto.keys import RecipientKey, SigningKey
from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.diskspace import writing
from transfers.errors import EncryptionFailed, KeyRefused
from transfers.files import write_atomic

__all__ = ["COMPRESSIONS", "Compression", "EncryptedFile", "encrypt_to_file", "sign_detached", "verify_detached"]

#: How the signed literal data is compressed inside the encryption (RFC 4880 9.3): not at all, raw
#: DEFLATE ("zip", what gpg and pgpy use by default) or DEFLATE with a zlib header and checksum.
Compression = Literal["none", "zip", "zlib"]
COMPRESSIONS: tuple[Compression, ...] = ("none", "zip", "zlib")
_ALGORITHM = {"zip": CompressionAlgorithm.ZIP, "zlib": CompressionAlgorithm.ZLIB}
#: A new-format packet header (RFC 4880 4.2.2) takes a length up to 2**32 - 1 in five octets.
_MAX_PACKET = 2**32 - 1


@dataclass(frozen=True)
class EncryptedFile:
    """A message written by ``encrypt_to_file``."""

    path: Path
    size: int
    sha256: str


def encrypt_to_file(plaintext: bytes, key: RecipientKey, dest: Path, *, filename: str,
                    signer: SigningKey | None = None, compression: Compression = "zip",
                    level: int = 1) -> EncryptedFile:
    """Encrypt ``plaintext`` to ``key`` (signed by ``signer`` first, if given) and write the message to ``dest``.

    AES-256 in an integrity-protected (SEIPD, MDC) packet, compressed as
    ``compression`` says, not armored. With a signer, the one message holds the
    signature over the literal data (sign, then compress, then encrypt, as gpg
    does), so ``gpg --decrypt`` reports who signed. Written to a temporary file
    in the same directory and renamed over ``dest``, so ``dest`` is either
    absent or complete; mode 0600.

    Args:
        plaintext: The bytes to encrypt (held in memory: split large extracts).
        key: A key from ``load_recipient_key``.
        dest: Where to write; its directory must exist.
        filename: Name stored inside the message (only its last part is kept).
        signer: Our key from ``load_own_signing_key``.
        compression: One of ``COMPRESSIONS``; every OpenPGP implementation must read "zip" and "none".
        level: zlib's level, 1 (fastest) to 9 (smallest), for "zip" and "zlib".

    Returns:
        The path, size and SHA-256 of the written message.

    Raises:
        EncryptionFailed: An unknown compression or level, a message too large for one packet,
            or the library made something other than SEIPD.
        WorkspaceFull: No space left beside ``dest``.
    """
    dest = Path(dest)
    if compression not in COMPRESSIONS or not 1 <= level <= 9:
        raise EncryptionFailed(f"{dest.name}: compression {compression!r} level {level!r} is not one of "
                               f"{', '.join(COMPRESSIONS)} at level 1-9")
    with quiet_pgpy():
        # Serialised uncompressed here; compressed below, once, at our level (see _Prepared for why).
        message = pgpy.PGPMessage.new(
            plaintext if isinstance(plaintext, bytes | bytearray) else bytes(plaintext),
            format="b",
            compression=CompressionAlgorithm.Uncompressed,
        )
        # PGPMessage.new only records a file name when it reads the file itself.
        literal = message._message
        literal.filename = os.path.basename(filename)[:255]
        literal.update_hlen()
        if signer is not None:
            message |= _sign(signer, message)
        inner = bytes(message)  # one-pass signature, literal data, signature
        del message
        if compression != "none":
            inner = _compressed_packet(inner, compression, level, dest.name)
        encrypted = key.encryption_key.encrypt(_Prepared(inner), cipher=SymmetricKeyAlgorithm.AES256)
        del inner
        # Guard the promise made above against a library change: the payload must be
        # the integrity-protected packet, never the old malleable SED packet.
        if not isinstance(encrypted._message, IntegrityProtectedSKEDataV1):
            raise EncryptionFailed(f"OpenPGP library produced {type(encrypted._message).__name__}, not SEIPD")
        data = bytes(encrypted)
    with writing(dest.parent, f"the encrypted file {dest.name}"):
        write_atomic(dest, data)
    return EncryptedFile(path=dest, size=len(data), sha256=hashlib.sha256(data).hexdigest())


class _Prepared(pgpy.PGPMessage):
    """A message already serialised to the packets that go inside the encryption.

    pgpy compresses a message with zlib's default level 6, cannot be given another level,
    and compresses it twice when it serialises it (once to measure the packet, once to
    write it): two thirds of a part's encryption time on pseudonyms, for a few percent
    of size over level 1. So we serialise the signed message uncompressed, compress it
    once ourselves (``_compressed_packet``), and hand pgpy the bytes through this
    subclass. No pgpy code is patched: ``PGPKey.encrypt`` encrypts ``bytes(message)``
    of whatever ``PGPMessage`` it is given, and this one's bytes are ours.
    """

    def __init__(self, packets: bytes) -> None:
        super().__init__()
        self._packets = packets

    def __bytearray__(self) -> bytearray:
        return bytearray(self._packets)

    def __bytes__(self) -> bytes:
        return self._packets


def _compressed_packet(packets: bytes, compression: Compression, level: int, name: str) -> bytes:
    """A Compressed Data packet (tag 8, RFC 4880 5.6) holding ``packets``, in the new packet format."""
    algorithm = _ALGORITHM[compression]
    if algorithm is CompressionAlgorithm.ZIP:
        raw = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)  # raw DEFLATE: no zlib header or checksum
        deflated = raw.compress(packets) + raw.flush()
    else:
        deflated = zlib.compress(packets, level)
    length = 1 + len(deflated)
    if length > _MAX_PACKET:
        raise EncryptionFailed(f"{name}: {length} bytes compressed is more than one OpenPGP packet holds; "
                               "lower TRANSFERS_DELIVERY_MAX_ROWS")
    return b"\xc8\xff" + length.to_bytes(4, "big") + bytes([algorithm]) + deflated


def sign_detached(data: bytes, signer: SigningKey) -> str:
    """An ASCII-armoured detached signature over ``data`` (a binary document), as ``gpg --verify`` checks it."""
    with quiet_pgpy():
        return str(_sign(signer, bytes(data)))


def verify_detached(data: bytes, signature: str | bytes, key: SigningKey) -> datetime | None:
    """When ``key``'s signing (sub)key made ``signature`` over exactly ``data``; ``None`` if it did not.

    A signature by any other key (another subkey of the same partner included),
    over other bytes, unreadable, or not a signature, is ``None``: never an error,
    so a caller can say which partners have not signed.
    """
    with quiet_pgpy():
        try:
            sig = pgpy.PGPSignature.from_blob(signature)
            if sig.signer != key.signing_key.fingerprint.keyid:
                return None
            if not key.signing_key.verify(bytes(data), sig):
                return None
        except Exception:  # pgpy raises several types for malformed or foreign signatures: all mean "not signed"
            return None
        created: datetime = sig.created
        return created


def _sign(signer: SigningKey, subject: Any) -> Any:
    if not signer.private:
        raise KeyRefused(f"key {signer.fingerprint}: a partner's public key cannot sign")
    if signer.passphrase is None:
        return signer.signing_key.sign(subject, hash=HashAlgorithm.SHA512)
    with signer.key.unlock(signer.passphrase):  # unlocking the primary unlocks its subkeys too
        return signer.signing_key.sign(subject, hash=HashAlgorithm.SHA512)
