"""Whether a parsed key is fit for a use (encrypt or sign): the one check behind every key we accept.

``check`` refuses (``KeyRefused``) a primary key that is weak, revoked, without a
verifying SHA-2 self-signature, with stated preferences that exclude AES-256 or
SHA-2, or expired / expiring within the margin; then picks the newest (sub)key
marked for the use whose binding signature verifies and that is itself strong,
unrevoked and unexpired. pgpy itself checks none of this before encrypting.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from pgpy.constants import (
    EllipticCurveOID,
    HashAlgorithm,
    KeyFlags,
    PubKeyAlgorithm,
    SignatureType,
    SymmetricKeyAlgorithm,
)

from transfers.crypto.parsing import fingerprint_of
from transfers.errors import KeyRefused

__all__ = ["check"]

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


def check(key: Any, where: str, fpr: str, now: datetime, horizon: datetime, use: str,
           who: str) -> tuple[Any, str, datetime | None]:
    """Every check of a key for ``use`` (``encrypt`` or ``sign``): the (sub)key to use, its algorithm, expiry.

    ``who`` is who to ask for a better key ("the recipient", "the partner", "the key owner").
    """
    flags, noun = _USES[use]
    weak = _weakness(key)
    if weak:
        raise KeyRefused(f"{where}: primary key is {weak}; {_ACCEPTED}. Ask {who} for a stronger key")
    if any(s.type == SignatureType.KeyRevocation for s in key.__sig__):
        raise KeyRefused(f"{where}: the key is revoked; ask {who} for their new key and its fingerprint", revoked=True)
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
        name = "primary key" if is_primary else f"subkey {fingerprint_of(candidate)}"
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
        # Revoked when a revoked key is among the refused and nothing else was wrong with the candidates.
        revoked = bool(problems) and all(p.endswith(": revoked") for p in problems)
        raise KeyRefused(
            f"{where}: no usable {noun} key ({detail}); {_ACCEPTED}. "
            f"Ask {who} for a current {noun} subkey",
            revoked=revoked,
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
