"""Open a delivery made for us: decrypt one signed-then-encrypted message in memory and check who signed it.

``decrypt_verified`` is the recipient's side of ``encrypt_to_file(..., signer=)``: the
message must be encrypted to our key in the integrity-protected packet (SEIPD with MDC;
the malleable SED packet is refused unread), and its literal data signed by the
sender's pinned signing key alone. Anything else is ``DeliveryRejected`` with a short
reason naming the file and key ids, never content. ``signature_issuer`` names who made a
detached signature, so a refusal can say which key signed instead of the pinned one.
"""

from __future__ import annotations

from typing import Any

import pgpy
from pgpy.constants import HashAlgorithm, SignatureType
from pgpy.packet.packets import IntegrityProtectedSKEDataV1, SKEData

from transfers.crypto.keys import DecryptionKey, SigningKey
from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.errors import DeliveryRejected

__all__ = ["decrypt_verified", "signature_issuer"]

# A signature over MD5/SHA-1 can be forged by collision: it does not prove who signed.
_GOOD_HASHES = {HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512, HashAlgorithm.SHA224}
_DOCUMENT = {SignatureType.BinaryDocument, SignatureType.CanonicalDocument}


def decrypt_verified(data: bytes, key: DecryptionKey, sender: SigningKey, *, where: str,
                     party: str | None = None) -> bytes:
    """The plaintext of one message encrypted to ``key`` and signed by ``sender``; held in memory only.

    Args:
        data: The message as received (binary or armoured).
        key: Our checked private key (``own_decryption_key``).
        sender: The sender's pinned, checked public signing key (``load_signing_key``).
        where: The file name, for reasons.
        party: The sender's party id, for reasons (default "the sender").

    Raises:
        DeliveryRejected: Not an OpenPGP message; not encrypted to our key; not integrity
            protected; does not decrypt (tampered); unsigned; signed by another key than the
            sender's pinned one; a signature that does not verify or uses a weak hash.
    """
    who = party or "the sender"
    pinned = f"{who}'s pinned signing key {sender.fingerprint}"
    with quiet_pgpy():
        message = _parse(data, where)
        if isinstance(message._message, SKEData):
            raise DeliveryRejected(f"{where}: not integrity-protected (SED packet, no MDC); refused unread")
        if not isinstance(message._message, IntegrityProtectedSKEDataV1):
            raise DeliveryRejected(f"{where}: not an encrypted OpenPGP message")
        ours = {key.key.fingerprint.keyid, *key.key.subkeys}
        if not message.encrypters & ours:
            named = ", ".join(sorted(message.encrypters)) or "a passphrase only"
            raise DeliveryRejected(f"{where}: not encrypted to our key {key.fingerprint} (encrypted to {named})")
        inner = _decrypt(message, key, where)
        if inner.type != "literal":
            raise DeliveryRejected(f"{where}: the decrypted message holds no literal data")
        signatures = list(inner.signatures)
        if not signatures:
            raise DeliveryRejected(f"{where}: unsigned; every part must be signed by {pinned}", kind="signature")
        expected = sender.signing_key.fingerprint.keyid
        for sig in signatures:
            if sig.signer != expected:
                raise DeliveryRejected(f"{where}: signed by key {sig.signer}, not {pinned}", kind="signature")
            if sig.hash_algorithm not in _GOOD_HASHES or sig.type not in _DOCUMENT:
                raise DeliveryRejected(f"{where}: signature by {sig.signer} uses {sig.hash_algorithm.name} / "
                                       f"{sig.type.name}; a SHA-2 document signature is required", kind="signature")
            if not _verifies(sender, inner, sig):
                raise DeliveryRejected(f"{where}: the signature of {pinned} does not verify", kind="signature")
        return bytes(inner.message)


def signature_issuer(signature: str | bytes) -> str | None:
    """The key id (16 hex digits) that made a detached signature, or ``None`` if it is not a readable signature."""
    with quiet_pgpy():
        try:
            return str(pgpy.PGPSignature.from_blob(signature).signer) or None
        except Exception:  # pgpy raises several types for what is not a signature: all mean "none"
            return None


def _parse(data: bytes, where: str) -> Any:
    try:
        message = pgpy.PGPMessage.from_blob(bytes(data))
        message.type  # noqa: B018 - pgpy "parses" some garbage into a message it cannot type
    except Exception:  # the parser's text may quote bytes of the file: name nothing of it
        raise DeliveryRejected(f"{where}: not an OpenPGP message") from None
    return message


def _decrypt(message: Any, key: DecryptionKey, where: str) -> Any:
    try:
        if key.passphrase is None:
            return key.key.decrypt(message)
        with key.key.unlock(key.passphrase):  # unlocking the primary unlocks its subkeys too
            return key.key.decrypt(message)
    except Exception:  # a failed MDC or session key: tampered or corrupt, either way unreadable
        raise DeliveryRejected(f"{where}: does not decrypt (tampered or corrupt: integrity check failed)") from None


def _verifies(sender: SigningKey, inner: Any, sig: Any) -> bool:
    try:
        return bool(sender.signing_key.verify(inner.message, sig))
    except Exception:  # a signature pgpy cannot check is one we do not trust
        return False
