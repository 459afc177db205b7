"""OpenPGP: check partners' pinned keys and our own signing key, then sign and encrypt a delivery.

The only module that imports pgpy, so the library can be swapped (e.g. for
the ``pgpym`` fork) by rewriting this file alone. Entry points:

- ``load_recipient_key`` / ``load_signing_key`` parse a partner's public key file
  (it may hold several keys; the pinned fingerprint selects one) and refuse it
  (``KeyRefused``) unless it is the pinned key, unexpired with a margin,
  unrevoked, strong enough, and has a key for that use (encrypt / sign) whose
  binding signature verifies. One check serves both uses. pgpy itself checks
  none of this before encrypting.
- ``load_own_signing_key`` takes our armoured private signing key (from the
  secrets backend) and applies the same checks, plus: it is the fingerprint
  pinned for our party in the Tier 1 register.
- ``own_signing_key`` reads that key and its optional passphrase from the secrets
  backend (``SIGNING_KEY_VAR``, ``SIGNING_KEY_PHRASE_VAR``) through a lookup.
- ``encrypt_to_file`` encrypts bytes with AES-256 in an integrity-protected
  packet (SEIPD with MDC) to that key and writes the binary message atomically;
  given a signer, the literal data is signed first, inside the same message.
- ``sign_detached`` makes an armoured detached signature (the manifest's).

Messages name the key file and fingerprints (public), never key material.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from transfers.diskspace import writing
from transfers.errors import EncryptionFailed, KeyRefused, SecretMissing
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

__all__ = [
    "SIGNING_KEY_VAR", "SIGNING_KEY_PHRASE_VAR", "EncryptedFile", "RecipientKey", "SigningKey", "encrypt_to_file", "load_own_signing_key", "load_recipient_key",
    "load_signing_key", "normalise_fingerprint", "own_signing_key", "sign_detached",
]

#: Secret ids (Airflow Variable, or env AIRFLOW_VAR_<ID upper-case>) of this party's own signing key:
#: the ASCII-armoured private key, and its passphrase if it has one.
SIGNING_KEY_VAR = "transfers_signing_key"
SIGNING_KEY_PHRASE_VAR = "transfers_signing_key_passphrase"

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
_SIGN_FLAGS = {KeyFlags.Sign}
#: What each use needs of a (sub)key, and how a refusal names it.
_USES = {"encrypt": (_ENCRYPT_FLAGS, "encryption"), "sign": (_SIGN_FLAGS, "signing")}
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
class SigningKey:
    """A signing key that passed the same checks: a partner's public one, or our own private one.

    ``path`` is the key file for a partner's key, ``None`` for ours (it came from the
    secrets backend). Only our own key can sign (``private``); its passphrase, if any,
    is kept out of ``repr``.
    """

    path: Path | None
    fingerprint: str  # the primary key's, equal to the pinned one
    signing_fingerprint: str  # the (sub)key that makes signatures
    algorithm: str
    expires_at: datetime | None
    key: Any = field(repr=False, compare=False)
    signing_key: Any = field(repr=False, compare=False)
    private: bool = False
    passphrase: str | None = field(default=None, repr=False, compare=False)


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
        path: Armored or binary OpenPGP public key file; if it holds several keys
            (appended armour blocks too), the pinned one is used.
        pinned_fingerprint: The fingerprint pinned in the agreement.
        now: The time to judge expiry at (default: now, UTC).
        margin: Refuse a key that expires within this long, so a delivery is
            never made to a key the recipient is about to retire.

    Returns:
        The key and the (sub)key to encrypt to.

    Raises:
        KeyRefused: The file is missing, unreadable, too large, not public
            keys, holds no key with the pinned fingerprint, expired or expiring within ``margin``,
            revoked, too weak, or without a usable encryption key.
    """
    return _load_partner_key(path, pinned_fingerprint, "encrypt", now, margin)


def load_signing_key(
    path: Path, pinned_fingerprint: str, *, now: datetime | None = None, margin: timedelta = timedelta(days=7)
) -> SigningKey:
    """Parse a partner's public key and refuse it unless it is safe to verify its signatures with.

    The same checks as ``load_recipient_key`` (pinned, expiry with ``margin``,
    revocation, strength), for a key or subkey marked for signing.

    Raises:
        KeyRefused: As ``load_recipient_key``, or no usable signing key.
    """
    return _load_partner_key(path, pinned_fingerprint, "sign", now, margin)


def load_own_signing_key(
    armored: str,
    pinned_fingerprint: str,
    *,
    passphrase: str | None = None,
    now: datetime | None = None,
    margin: timedelta = timedelta(days=7),
) -> SigningKey:
    """Our party's private signing key (from the secrets backend), checked before it signs anything.

    Args:
        armored: The ASCII-armoured private key (never logged, never written).
        pinned_fingerprint: Our party's ``signing_fingerprint`` in the Tier 1 register.
        passphrase: Unlocks the key if it is protected.

    Raises:
        KeyRefused: Not one readable private key, not the pinned fingerprint (both
            named), the passphrase does not unlock it, or any check of
            ``load_signing_key`` fails. The message never quotes key material.
    """
    where = "the signing key secret"
    pinned = _pinned(pinned_fingerprint, where)
    now, horizon = _clock(now, margin)
    data = armored.encode("utf-8") if isinstance(armored, str) else bytes(armored)
    key = _parse_bytes(data, where, pinned, kind="private key")
    if key.is_public:
        raise KeyRefused(f"{where}: holds a public key; it must be this party's armoured PRIVATE signing key")
    fpr = _fpr(key)
    if fpr != pinned:
        raise KeyRefused(
            f"{where}: key {fpr} is not the signing key {pinned} pinned for this party in protocol.yaml "
            "(signing_fingerprint); set the right key, or pin its fingerprint"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = _check(key, f"{where} (key {fpr})", fpr, now, horizon, "sign", "the key owner")
        if key.is_protected:
            try:
                with key.unlock(passphrase or ""):
                    pass
            except Exception:  # pgpy raises PGPDecryptionError (or others) for a wrong passphrase
                raise KeyRefused(
                    f"{where} (key {fpr}): the passphrase secret does not unlock it "
                    "(set transfers_signing_key_passphrase)"
                ) from None
    usable, algorithm, expires_at = found
    return SigningKey(path=None, fingerprint=fpr, signing_fingerprint=_fpr(usable), algorithm=algorithm,
                      expires_at=expires_at, key=key, signing_key=usable, private=True,
                      passphrase=passphrase if key.is_protected else None)


def own_signing_key(secret: Callable[[str], str], party: str, pinned_fingerprint: str | None, *,
                    now: datetime | None = None, margin: timedelta = timedelta(days=7)) -> SigningKey:
    """This party's signing key from the secrets backend, checked against its pin, ready to sign.

    Args:
        secret: Resolves a secret id (``Resolvers.secret``); raises ``SecretMissing`` for an unset one.
        party: The signatory id that signs (a flow's ``from``), for messages.
        pinned_fingerprint: Its ``signing_fingerprint`` in the Tier 1 register.

    Raises:
        SecretMissing: ``SIGNING_KEY_VAR`` is not set.
        KeyRefused: No fingerprint is pinned for ``party``, or ``load_own_signing_key`` refuses the key.
    """
    armored = secret(SIGNING_KEY_VAR)  # SecretMissing first: the fix is to set it, whatever else is wrong
    if not pinned_fingerprint:
        raise KeyRefused(f"{party}: no signing_fingerprint in protocol.yaml; pin the fingerprint of its signing key")
    try:
        passphrase: str | None = secret(SIGNING_KEY_PHRASE_VAR)
    except SecretMissing:
        passphrase = None  # optional: an unprotected key in a protected secrets backend is common
    try:
        return load_own_signing_key(armored, pinned_fingerprint, passphrase=passphrase, now=now, margin=margin)
    except KeyRefused as exc:
        raise KeyRefused(f"{party}: {exc}") from None


def _load_partner_key(path: Path, pinned_fingerprint: str, use: str, now: datetime | None,
                      margin: timedelta) -> Any:  # RecipientKey for "encrypt", SigningKey for "sign"
    path = Path(path)
    now, horizon = _clock(now, margin)
    pinned = _pinned(pinned_fingerprint, f"key file {path.name}")
    key = _parse(path, pinned)
    fpr = _fpr(key)
    where = f"key file {path}"
    if fpr != pinned:
        raise KeyRefused(
            f"{where}: fingerprint {fpr} is not the pinned {pinned}; get the recipient's key "
            "again and check its fingerprint with them by another channel"
        )
    where = f"{where} (key {fpr})"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        usable, algorithm, expires_at = _check(key, where, fpr, now, horizon, use,
                                               "the recipient" if use == "encrypt" else "the partner")
    if use == "encrypt":
        return RecipientKey(path=path, fingerprint=fpr, encryption_fingerprint=_fpr(usable), algorithm=algorithm,
                            expires_at=expires_at, key=key, encryption_key=usable)
    return SigningKey(path=path, fingerprint=fpr, signing_fingerprint=_fpr(usable), algorithm=algorithm,
                      expires_at=expires_at, key=key, signing_key=usable)


def _pinned(value: str, where: str) -> str:
    try:
        return normalise_fingerprint(value)
    except ValueError as exc:
        raise KeyRefused(f"{where}: pinned fingerprint {exc}") from None


def _clock(now: datetime | None, margin: timedelta) -> tuple[datetime, datetime]:
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)  # pgpy's dates are aware (UTC); a naive "now" means UTC here
    return now, now + margin


def encrypt_to_file(plaintext: bytes, key: RecipientKey, dest: Path, *, filename: str,
                    signer: SigningKey | None = None) -> EncryptedFile:
    """Encrypt ``plaintext`` to ``key`` (signed by ``signer`` first, if given) and write the message to ``dest``.

    AES-256 in an integrity-protected (SEIPD, MDC) packet, ZIP compressed,
    not armored. With a signer, the one message holds the signature over the
    literal data (sign, then encrypt), so ``gpg --decrypt`` reports who signed.
    Written to a temporary file in the same directory and renamed over
    ``dest``, so ``dest`` is either absent or complete; mode 0600.

    Args:
        plaintext: The bytes to encrypt (held in memory: split large extracts).
        key: A key from ``load_recipient_key``.
        dest: Where to write; its directory must exist.
        filename: Name stored inside the message (only its last part is kept).
        signer: Our key from ``load_own_signing_key``.

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
        if signer is not None:
            message |= _sign(signer, message)
        encrypted = key.encryption_key.encrypt(message, cipher=SymmetricKeyAlgorithm.AES256)
        # Guard the promise made above against a library change: the payload must be
        # the integrity-protected packet, never the old malleable SED packet.
        if not isinstance(encrypted._message, IntegrityProtectedSKEDataV1):
            raise EncryptionFailed(f"OpenPGP library produced {type(encrypted._message).__name__}, not SEIPD")
        data = bytes(encrypted)
    with writing(dest.parent, f"the encrypted file {dest.name}"):
        write_atomic(dest, data)
    return EncryptedFile(path=dest, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def sign_detached(data: bytes, signer: SigningKey) -> str:
    """An ASCII-armoured detached signature over ``data`` (a binary document), as ``gpg --verify`` checks it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(_sign(signer, bytes(data)))


def _sign(signer: SigningKey, subject: Any) -> Any:
    if not signer.private:
        raise KeyRefused(f"key {signer.fingerprint}: a partner's public key cannot sign")
    if signer.passphrase is None:
        return signer.signing_key.sign(subject, hash=HashAlgorithm.SHA512)
    with signer.key.unlock(signer.passphrase):  # unlocking the primary unlocks its subkeys too
        return signer.signing_key.sign(subject, hash=HashAlgorithm.SHA512)


# --------------------------------------------------------------------------- parsing


def _parse(path: Path, pinned: str | None) -> Any:
    """Read and parse a public key file, with a size and a time limit; the pinned key if it holds several."""
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
    key = _parse_bytes(data, f"key file {path}", pinned)
    if not key.is_public:
        raise KeyRefused(
            f"key file {path}: holds a PRIVATE key; it must not be used or kept. Delete it, ask the "
            "recipient for their public key only, and tell them their private key was disclosed"
        )
    return key


def _parse_bytes(data: bytes, where: str, pinned: str | None, kind: str = "public key") -> Any:
    """Parse key bytes in a daemon thread with a time limit; pick the ``pinned`` primary if several."""
    if len(data) > MAX_KEY_BYTES:
        raise KeyRefused(f"{where}: {len(data)} bytes is too large for a key (limit {MAX_KEY_BYTES})")
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # pgpy reads one armour block; a file made by appending one partner's keys holds several.
                result["value"] = [pgpy.PGPKey.from_blob(blob) for blob in _armour_blocks(data)]
        except Exception as exc:  # any parser failure means "not a key we can use"
            result["error"] = exc

    # A daemon thread: if the parser never returns we give up on it, and it
    # cannot keep the process alive at exit (a thread cannot be killed).
    worker = threading.Thread(target=work, name="pgp-parse", daemon=True)
    worker.start()
    worker.join(PARSE_TIMEOUT_SECONDS)
    if worker.is_alive():
        raise KeyRefused(
            f"{where}: parsing took longer than {PARSE_TIMEOUT_SECONDS:g}s; it is not a normal {kind}"
        )
    if "error" in result:
        # The parser's own text may quote bytes of the file; name its type only.
        raise KeyRefused(
            f"{where}: not a readable OpenPGP {kind} "
            f"({type(result['error']).__name__}); expected an armored or binary {kind}"
        )
    primaries = []
    for key, others in result["value"]:
        if key.fingerprint is None:  # pgpy "parses" some garbage into an empty key
            raise KeyRefused(
                f"{where}: not a readable OpenPGP {kind} (no key packet found); "
                f"expected an armored or binary {kind}"
            )
        primaries += [k for k in others.values() if k.is_primary] or [key]
    key = primaries[0]
    if len(primaries) > 1:
        # One file may hold a partner's encryption and signing keys: the pin says which one is meant.
        chosen = next((k for k in primaries if _fpr(k) == pinned), None)
        if chosen is None:
            found = ", ".join(_fpr(k) for k in primaries)
            raise KeyRefused(f"{where}: holds {len(primaries)} keys ({found}), none of them the pinned {pinned}")
        return chosen
    return key


def _armour_blocks(data: bytes) -> list[bytes]:
    """Each ASCII-armoured block of ``data`` (one or more), or ``data`` itself when it is binary."""
    begin, end = b"-----BEGIN PGP ", b"-----END PGP "
    if data.count(begin) < 2:
        return [data]
    blocks, rest = [], data
    while (start := rest.find(begin)) >= 0:
        stop = rest.find(end, start)
        if stop < 0:
            blocks.append(rest[start:])
            break
        line_end = rest.find(b"\n", stop)
        stop = len(rest) if line_end < 0 else line_end + 1
        blocks.append(rest[start:stop])
        rest = rest[stop:]
    return blocks


# --------------------------------------------------------------------------- checks


def _check(key: Any, where: str, fpr: str, now: datetime, horizon: datetime, use: str,
           who: str) -> tuple[Any, str, datetime | None]:
    """Every check of a key for ``use`` (``encrypt`` or ``sign``): the (sub)key to use, its algorithm, expiry.

    ``who`` is who to ask for a better key ("the recipient", "the partner", "the key owner").
    """
    flags, noun = _USES[use]
    weak = _weakness(key)
    if weak:
        raise KeyRefused(f"{where}: primary key is {weak}; {_ACCEPTED}. Ask {who} for a stronger key")
    if any(s.type == SignatureType.KeyRevocation for s in key.__sig__):
        raise KeyRefused(f"{where}: the key is revoked; ask {who} for their new key and its fingerprint")
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
        raise KeyRefused(f"{where}: {preferences}; ask {who} to run gpg --edit-key, setpref AES256 "
                         "AES192 AES SHA512 SHA384 SHA256 ZLIB ZIP Uncompressed, and send the key again")
    primary_expiry = _expiry(key, selfsig)
    _check_expiry(where, "the key", primary_expiry, now, horizon, who)

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
        if not (set(sig.key_flags or ()) & flags):
            continue  # a key for another use: not a candidate, not a problem
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
        detail = "; ".join(problems) or f"no key or subkey is marked for {noun}"
        raise KeyRefused(
            f"{where}: no usable {noun} key ({detail}); {_ACCEPTED}. "
            f"Ask {who} for a current {noun} subkey"
        )
    # Like gpg: the newest usable key for the use is the one its owner expects to be used.
    chosen, chosen_expiry = max(usable, key=lambda item: item[0].created)
    expiries = [e for e in (primary_expiry, chosen_expiry) if e is not None]
    return chosen, _describe(chosen), min(expiries) if expiries else None


def _check_expiry(where: str, what: str, expiry: datetime | None, now: datetime, horizon: datetime,
                  who: str) -> None:
    if expiry is None or expiry > horizon:
        return
    if expiry <= now:
        raise KeyRefused(
            f"{where}: {what} expired on {expiry:%Y-%m-%d %H:%M} UTC; ask {who} to extend it or send a new key"
        )
    raise KeyRefused(
        f"{where}: {what} expires on {expiry:%Y-%m-%d %H:%M} UTC, within the safety margin "
        f"(until {horizon:%Y-%m-%d}); ask {who} to extend it before sending"
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
