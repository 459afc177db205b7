"""OpenPGP: check partners' pinned keys and our own signing key, then sign and encrypt a delivery.

The only package that imports pgpy (installed as ``pgpym``, the maintained fork of
pgpy 0.6 with the same ``pgpy`` import), so the library can be swapped by rewriting
this package alone. Callers import from here:

- ``parsing``: key bytes to pgpy keys, within a size (``MAX_KEY_BYTES``) and a
  time limit (``PARSE_TIMEOUT_SECONDS``); the pinned key of several.
- ``checks``: the one check of a key for a use (encrypt / sign): pinned,
  unexpired with a margin, unrevoked, strong enough, a (sub)key for that use
  whose binding signature verifies. pgpy itself checks none of this before encrypting.
- ``keys``: ``load_recipient_key`` / ``load_signing_key`` (a partner's public key
  file, which may hold several keys; the pinned fingerprint selects one),
  ``load_own_signing_key`` (our armoured private key, also pinned for our party
  in the Tier 1 register) and ``own_signing_key`` (that key and its optional
  passphrase from the secrets backend: ``SIGNING_KEY_VAR``, ``SIGNING_KEY_PHRASE_VAR``);
  ``party_signing_key`` (that key for a sending party, against its pin in the Tier 1
  register: what deliveries and notices are signed with).
  ``own_decryption_key`` (our private key partners encrypt to: ``DECRYPTION_KEY_VAR``,
  ``DECRYPTION_KEY_PHRASE_VAR``, checked against the agreement's pin for us as a recipient).
  Anything that fails a check is refused with ``KeyRefused``.
- ``message``: ``encrypt_to_file`` encrypts bytes with AES-256 in an
  integrity-protected packet (SEIPD with MDC) to a checked key and writes the
  binary message atomically; given a signer, the literal data is signed first,
  inside the same message, compressed as asked (``COMPRESSIONS``: none, zip, zlib, at a
  zlib level). ``sign_detached`` makes an armoured detached
  signature (the manifest's, an agreement's sign-off); ``verify_detached``
  checks one against a partner's checked signing key.
- ``decrypt``: ``decrypt_verified`` opens a message made for us (in memory): encrypted to
  our key, integrity protected, signed by the sender's pinned key, else ``DeliveryRejected``;
  ``signature_issuer`` names the key id that made a detached signature.
- ``pgpy_warnings``: ``quiet_pgpy`` around every pgpy call drops pgpy's own notes and the
  ``cryptography`` deprecations it is known to reach (``PGPY_DEPRECATIONS``); any other
  warning reaches the caller (the tests make ``cryptography``'s errors).

Messages name the key file and fingerprints (public), never key material.
"""

from __future__ import annotations

from transfers.crypto.decrypt import decrypt_verified, signature_issuer
from transfers.crypto.keys import (
    DECRYPTION_KEY_PHRASE_VAR,
    DECRYPTION_KEY_VAR,
    SIGNING_KEY_PHRASE_VAR,
    SIGNING_KEY_VAR,
    DecryptionKey,
    RecipientKey,
    SigningKey,
    load_own_decryption_key,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    normalise_fingerprint,
    own_decryption_key,
    own_key_fingerprint,
    own_signing_key,
    party_signing_key,
)
from transfers.crypto.message import (
    COMPRESSIONS,
    Compression,
    EncryptedFile,
    encrypt_to_file,
    sign_detached,
    verify_detached,
)

__all__ = [
    "COMPRESSIONS", "Compression",
    "DECRYPTION_KEY_PHRASE_VAR", "DECRYPTION_KEY_VAR", "DecryptionKey", "decrypt_verified", "load_own_decryption_key",
    "own_decryption_key", "signature_issuer", "SIGNING_KEY_VAR", "SIGNING_KEY_PHRASE_VAR", "EncryptedFile", "RecipientKey", "SigningKey", "encrypt_to_file",
    "load_own_signing_key", "load_recipient_key", "load_signing_key", "normalise_fingerprint", "own_signing_key",
    "own_key_fingerprint", "party_signing_key", "sign_detached", "verify_detached",
]
