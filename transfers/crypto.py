"""OpenPGP step: check the recipient's pinned key, then encrypt a delivery to it.

The only module that imports pgpy, so the library can be swapped (e.g. for
the ``pgpym`` fork) by rewriting this file alone. Two entry points:

- ``load_recipient_key`` parses a partner's public key file and refuses it
  (``KeyRefused``) unless it is the pinned key, unexpired with a margin,
  unrevoked, strong enough, and has an encryption key whose binding signature
  verifies. pgpy itself checks none of this before encrypting.
- ``encrypt_to_file`` encrypts bytes with AES-256 in an integrity-protected
  packet (SEIPD with MDC) to that key and writes the binary message atomically.

Messages name the key file and fingerprints (public), never key material.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from transfers.diskspace import writing
from transfers.errors import EncryptionFailed, KeyRefused
from transfers.files import write_atomic

with warnings.catch_warnings():
    # pgpy 0.6 registers ciphers that cryptography has moved to "decrepit" and
    # deprecated; we never select them, so the warnings are noise here.
    warnings.simplefilter("ignore")
    import pgpy
    from cryptography.hazmat.primitives import hashes
    from pgpy.constants import (
        CompressionAlgorithm,
        EllipticCurveOID,
        HashAlgorithm,
        KeyFlags,
        PubKeyAlgorithm,
        SignatureType,
        SymmetricKeyAlgorithm,
    )
    from pgpy.packet.packets import IntegrityProtectedSKEDataV1

__all__ = ["EncryptedFile", "RecipientKey", "encrypt_to_file", "load_recipient_key", "normalise_fingerprint"]

#: A public key with a few subkeys and certifications is a few KB; anything this
#: big is not a key we should spend time parsing.
MAX_KEY_BYTES = 1024 * 1024
#: pgpy's parser is pure Python; a crafted file must not hang a task.
PARSE_TIMEOUT_SECONDS = 10.0

_RSA = {PubKeyAlgorithm.RSAEncryptOrSign, PubKeyAlgorithm.RSAEncrypt, PubKeyAlgorithm.RSASign}
_EC = {PubKeyAlgorithm.ECDH, PubKeyAlgorithm.ECDSA, PubKeyAlgorithm.EdDSA}
_GOOD_CURVES = {
    EllipticCurveOID.Curve25519,
    EllipticCurveOID.Ed25519,
    EllipticCurveOID.NIST_P256,
    EllipticCurveOID.NIST_P384,
    EllipticCurveOID.NIST_P521,
}
_MIN_RSA_BITS = 3072
# Signatures over MD5/SHA-1/RIPEMD-160 can be forged by collision; a binding
# made with one does not prove the primary key's owner chose that subkey.
_GOOD_HASHES = {HashAlgorithm.SHA256, HashAlgorithm.SHA384, HashAlgorithm.SHA512, HashAlgorithm.SHA224}
_CERTIFICATIONS = {
    SignatureType.Generic_Cert,
    SignatureType.Persona_Cert,
    SignatureType.Casual_Cert,
    SignatureType.Positive_Cert,
}
_ENCRYPT_FLAGS = {KeyFlags.EncryptCommunications, KeyFlags.EncryptStorage}
_ACCEPTED = "accepted: RSA >= 3072 bits, Curve25519/Ed25519, NIST P-256/P-384/P-521"


def normalise_fingerprint(text: str) -> str:
    """An OpenPGP v4 fingerprint as 40 upper-case hex digits.

    Args:
        text: As ``gpg --fingerprint`` prints it, spaces allowed, any case.

    Raises:
        ValueError: It is not 40 hex digits (the message says what was wrong).
    """
    value = "".join(str(text).split()).upper()
    if len(value) != 40 or any(c not in "0123456789ABCDEF" for c in value):
        raise ValueError(f"{text!r} is not an OpenPGP v4 fingerprint (40 hex digits, as `gpg --fingerprint` prints)")
    return value


@dataclass(frozen=True)
class RecipientKey:
    """A recipient's public key that passed every check in ``load_recipient_key``."""

    path: Path
    fingerprint: str  # the primary key's, equal to the pinned one
    encryption_fingerprint: str  # the (sub)key a message is encrypted to
    algorithm: str  # of the encryption key, e.g. "Curve25519" or "RSA-3072"
    expires_at: datetime | None  # the earlier of primary and encryption key expiry
    key: Any = field(repr=False, compare=False)  # pgpy.PGPKey (primary)
    encryption_key: Any = field(repr=False, compare=False)  # pgpy.PGPKey (subkey or primary)


@dataclass(frozen=True)
class EncryptedFile:
    """A message written by ``encrypt_to_file``."""

    path: Path
    size: int
    sha256: str


def load_recipient_key(
    path: Path, pinned_fingerprint: str, *, now: datetime | None = None, margin: timedelta = timedelta(days=7)
) -> RecipientKey:
    """Parse a partner's public key and refuse it unless it is safe to encrypt to.

    Args:
        path: Armored or binary OpenPGP public key file (one key).
        pinned_fingerprint: The fingerprint pinned in the agreement.
        now: The time to judge expiry at (default: now, UTC).
        margin: Refuse a key that expires within this long, so a delivery is
            never made to a key the recipient is about to retire.

    Returns:
        The key and the (sub)key to encrypt to.

    Raises:
        KeyRefused: The file is missing, unreadable, too large, not one public
            key, not the pinned key, expired or expiring within ``margin``,
            revoked, too weak, or without a usable encryption key.
    """
    path = Path(path)
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # pgpy's dates are aware (UTC); a naive "now" means UTC here
    try:
        pinned = normalise_fingerprint(pinned_fingerprint)
    except ValueError as exc:
        raise KeyRefused(f"key file {path.name}: pinned fingerprint {exc}") from None
    key = _parse(path)
    fpr = str(key.fingerprint).replace(" ", "").upper()
    where = f"key file {path}"
    if fpr != pinned:
        raise KeyRefused(
            f"{where}: fingerprint {fpr} is not the pinned {pinned}; get the recipient's key "
            "again and check its fingerprint with them by another channel"
        )
    where = f"{where} (key {fpr})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _check(key, path, where, fpr, now, now + margin)


def encrypt_to_file(plaintext: bytes, key: RecipientKey, dest: Path, *, filename: str) -> EncryptedFile:
    """Encrypt ``plaintext`` to ``key`` and write the binary message to ``dest``.

    AES-256 in an integrity-protected (SEIPD, MDC) packet, ZIP compressed,
    not armored. Written to a temporary file in the same directory and renamed
    over ``dest``, so ``dest`` is either absent or complete; mode 0600.

    Args:
        plaintext: The bytes to encrypt (held in memory: split large extracts).
        key: A key from ``load_recipient_key``.
        dest: Where to write; its directory must exist.
        filename: Name stored inside the message (only its last part is kept).

    Returns:
        The path, size and SHA-256 of the written message.
    """
    dest = Path(dest)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = pgpy.PGPMessage.new(
            plaintext if isinstance(plaintext, bytes | bytearray) else bytes(plaintext),
            format="b",
            compression=CompressionAlgorithm.ZIP,
        )
        # PGPMessage.new only records a file name when it reads the file itself.
        literal = message._message
        literal.filename = os.path.basename(filename)[:255]
        literal.update_hlen()
        encrypted = key.encryption_key.encrypt(message, cipher=SymmetricKeyAlgorithm.AES256)
        # Guard the promise made above against a library change: the payload must be
        # the integrity-protected packet, never the old malleable SED packet.
        if not isinstance(encrypted._message, IntegrityProtectedSKEDataV1):
            raise EncryptionFailed(f"OpenPGP library produced {type(encrypted._message).__name__}, not SEIPD")
        data = bytes(encrypted)
    with writing(dest.parent, f"the encrypted file {dest.name}"):
        write_atomic(dest, data)
    return EncryptedFile(path=dest, size=len(data), sha256=hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------- parsing


def _parse(path: Path) -> Any:
    """Read and parse one public key, with a size and a time limit."""
    try:
        size = path.stat().st_size
        if size > MAX_KEY_BYTES:
            raise KeyRefused(
                f"key file {path}: {size} bytes is too large for a public key "
                f"(limit {MAX_KEY_BYTES}); is this the right file?"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise KeyRefused(f"key file {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result["value"] = pgpy.PGPKey.from_blob(data)
        except Exception as exc:  # any parser failure means "not a key we can use"
            result["error"] = exc

    # A daemon thread: if the parser never returns we give up on it, and it
    # cannot keep the process alive at exit (a thread cannot be killed).
    worker = threading.Thread(target=work, name=f"pgp-parse-{path.name}", daemon=True)
    worker.start()
    worker.join(PARSE_TIMEOUT_SECONDS)
    if worker.is_alive():
        raise KeyRefused(
            f"key file {path}: parsing took longer than {PARSE_TIMEOUT_SECONDS:g}s; the file is not a normal public key"
        )
    if "error" in result:
        # The parser's own text may quote bytes of the file; name its type only.
        raise KeyRefused(
            f"key file {path}: not a readable OpenPGP public key "
            f"({type(result['error']).__name__}); expected one armored or binary public key"
        )
    key, others = result["value"]
    if key.fingerprint is None:  # pgpy "parses" some garbage into an empty key
        raise KeyRefused(
            f"key file {path}: not a readable OpenPGP public key (no key packet found); "
            "expected one armored or binary public key"
        )
    if not key.is_public:
        raise KeyRefused(
            f"key file {path}: holds a PRIVATE key; it must not be used or kept. Delete it, ask the "
            "recipient for their public key only, and tell them their private key was disclosed"
        )
    primaries = [k for k in others.values() if k.is_primary]
    if len(primaries) > 1:
        raise KeyRefused(f"key file {path}: holds {len(primaries)} keys; keep exactly one public key per file")
    return key


# --------------------------------------------------------------------------- checks


def _check(key: Any, path: Path, where: str, fpr: str, now: datetime, horizon: datetime) -> RecipientKey:
    weak = _weakness(key)
    if weak:
        raise KeyRefused(f"{where}: primary key is {weak}; {_ACCEPTED}. Ask the recipient for a stronger key")
    if any(s.type == SignatureType.KeyRevocation for s in key.__sig__):
        raise KeyRefused(f"{where}: the key is revoked; ask the recipient for their new key and its fingerprint")
    selfsig = _latest(
        _verified(
            key,
            [(uid, s) for uid in key.userids for s in uid.__sig__ if s.type in _CERTIFICATIONS]
            + [(key, s) for s in key.__sig__ if s.type == SignatureType.DirectlyOnKey],
        )
    )
    if selfsig is None:
        raise KeyRefused(f"{where}: no valid self-signature (SHA-2) on the key; it cannot be trusted as published")
    if preferences := _weak_preferences(selfsig):
        raise KeyRefused(f"{where}: {preferences}; ask the recipient to run gpg --edit-key, setpref AES256 "
                         "AES192 AES SHA512 SHA384 SHA256 ZLIB ZIP Uncompressed, and send the key again")
    primary_expiry = _expiry(key, selfsig)
    _check_expiry(where, "the key", primary_expiry, now, horizon)

    candidates = [
        (sk, _latest(_verified(key, [(sk, s) for s in sk.__sig__ if s.type == SignatureType.Subkey_Binding])))
        for sk in key.subkeys.values()
    ]
    candidates.append((key, selfsig))
    usable, problems = [], []
    for candidate, sig in candidates:
        is_primary = candidate is key
        name = "primary key" if is_primary else f"subkey {_fpr(candidate)}"
        if sig is None:
            problems.append(f"{name}: binding signature does not verify")
            continue
        if not (set(sig.key_flags or ()) & _ENCRYPT_FLAGS):
            continue  # a signing or certifying key: not a candidate, not a problem
        weak = _weakness(candidate)
        expiry = primary_expiry if is_primary else _expiry(candidate, sig)
        if weak:
            problems.append(f"{name}: {weak}")
        elif not is_primary and any(s.type == SignatureType.SubkeyRevocation for s in candidate.__sig__):
            problems.append(f"{name}: revoked")
        elif expiry is not None and expiry <= horizon:
            problems.append(f"{name}: {'expired' if expiry <= now else 'expires'} {expiry:%Y-%m-%d %H:%M} UTC")
        else:
            usable.append((candidate, expiry))
    if not usable:
        detail = "; ".join(problems) or "no key or subkey is marked for encryption"
        raise KeyRefused(
            f"{where}: no usable encryption key ({detail}); {_ACCEPTED}. "
            "Ask the recipient for a current encryption subkey"
        )
    # Like gpg: the newest usable encryption key is the one the recipient expects to use.
    enc, enc_expiry = max(usable, key=lambda item: item[0].created)
    expiries = [e for e in (primary_expiry, enc_expiry) if e is not None]
    return RecipientKey(
        path=path,
        fingerprint=fpr,
        encryption_fingerprint=_fpr(enc),
        algorithm=_describe(enc),
        expires_at=min(expiries) if expiries else None,
        key=key,
        encryption_key=enc,
    )


def _check_expiry(where: str, what: str, expiry: datetime | None, now: datetime, horizon: datetime) -> None:
    if expiry is None or expiry > horizon:
        return
    if expiry <= now:
        raise KeyRefused(
            f"{where}: {what} expired on {expiry:%Y-%m-%d %H:%M} UTC; ask the recipient to extend it or send a new key"
        )
    raise KeyRefused(
        f"{where}: {what} expires on {expiry:%Y-%m-%d %H:%M} UTC, within the safety margin "
        f"(until {horizon:%Y-%m-%d}); ask the recipient to extend it before sending"
    )


def _verified(signer: Any, pairs: list[tuple[Any, Any]]) -> list[Any]:
    """The signatures in ``pairs`` (subject, signature) made by ``signer`` that verify."""
    good = []
    for subject, sig in pairs:
        if sig.signer != signer.fingerprint.keyid or sig.hash_algorithm not in _GOOD_HASHES:
            continue
        try:
            # Only the mathematics: PGPKey.verify also applies pgpy's own policy, which
            # fails every signature of a key that has expired by the wall clock and so
            # would hide the reason (expired, on which date) that we report ourselves.
            ok = signer._key.verify(sig.hashdata(subject), sig.__sig__, getattr(hashes, sig.hash_algorithm.name)())
        except Exception:  # noqa: S112 - a signature we cannot check is one we do not trust
            continue
        if ok is True:
            good.append(sig)
    return good


def _weak_preferences(sig: Any) -> str | None:
    """Why the key's stated preferences rule it out (no AES-256, which we always use; no SHA-2), or None."""
    ciphers, digests = list(sig.cipherprefs or []), list(sig.hashprefs or [])  # empty states nothing
    if ciphers and SymmetricKeyAlgorithm.AES256 not in ciphers:
        return f"its cipher preferences ({', '.join(c.name for c in ciphers)}) do not include AES-256"
    no_sha2 = digests and not set(digests) & _GOOD_HASHES
    return f"its hash preferences ({', '.join(h.name for h in digests)}) include no SHA-2 hash" if no_sha2 else None


def _latest(sigs: list[Any]) -> Any | None:
    return max(sigs, key=lambda s: s.created) if sigs else None


def _expiry(key: Any, sig: Any) -> datetime | None:
    lifetime = sig.key_expiration
    # A key expiration time of 0 means "never" (RFC 4880 5.2.3.6).
    return key.created + lifetime if lifetime else None


def _weakness(key: Any) -> str | None:
    """Why ``key``'s algorithm is not acceptable, or ``None`` if it is."""
    alg = key.key_algorithm
    if alg in _RSA:
        return None if key.key_size >= _MIN_RSA_BITS else f"RSA-{key.key_size} (too short)"
    if alg in _EC:
        curve = key.key_size
        return None if curve in _GOOD_CURVES else f"{alg.name} on {getattr(curve, 'name', curve)} (not accepted)"
    return f"{getattr(alg, 'name', alg)} (not accepted)"


def _describe(key: Any) -> str:
    if key.key_algorithm in _RSA:
        return f"RSA-{key.key_size}"
    return f"{key.key_algorithm.name}/{key.key_size.name}"


def _fpr(key: Any) -> str:
    return str(key.fingerprint).replace(" ", "").upper()
