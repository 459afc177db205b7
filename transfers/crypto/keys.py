"""Partners' pinned public keys and our own signing key: parsed within limits, checked, or refused.

- ``load_recipient_key`` / ``load_signing_key`` parse a partner's public key file
  (it may hold several keys; the pinned fingerprint selects one) and refuse it
  (``KeyRefused``) unless it is the pinned key, unexpired with a margin,
  unrevoked, strong enough, and has a key for that use (encrypt / sign) whose
  binding signature verifies. One check (``checks.check``) serves both uses.
- ``load_own_signing_key`` takes our armoured private signing key (from the
  secrets backend) and applies the same checks, plus: it is the fingerprint
  pinned for our party in the Tier 1 register.
- ``own_signing_key`` reads that key and its optional passphrase from the secrets
  backend (``SIGNING_KEY_VAR``, ``SIGNING_KEY_PHRASE_VAR``) through a lookup.
- ``own_decryption_key`` reads our armoured private key for decrypting deliveries
  (``DECRYPTION_KEY_VAR``, ``DECRYPTION_KEY_PHRASE_VAR``) and checks it as above, for
  encryption, and that it is the fingerprint the agreement pins for us as a recipient.
- ``party_signing_key`` is the one way a sending party's key is got for anything it
  signs (deliveries, manifests, notices): ``own_signing_key`` checked against that
  party's ``signing_fingerprint`` in the Tier 1 register.

Messages name the key file and fingerprints (public), never key material.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfers.crypto.checks import check
from transfers.crypto.parsing import fingerprint_of, parse, parse_bytes
from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.errors import KeyRefused, SecretMissing

if TYPE_CHECKING:
    from transfers.agreement.protocol import Protocol

__all__ = [
    "DECRYPTION_KEY_PHRASE_VAR", "DECRYPTION_KEY_VAR", "SIGNING_KEY_PHRASE_VAR", "SIGNING_KEY_VAR", "DecryptionKey",
    "RecipientKey", "SigningKey", "load_own_decryption_key", "load_own_signing_key", "load_recipient_key",
    "load_signing_key", "normalise_fingerprint", "own_decryption_key", "own_key_fingerprint", "own_signing_key",
    "party_signing_key",
]

#: Secret ids (Airflow Variable, or env AIRFLOW_VAR_<ID upper-case>) of this party's own signing key:
#: the ASCII-armoured private key, and its passphrase if it has one.
SIGNING_KEY_VAR = "transfers_signing_key"
SIGNING_KEY_PHRASE_VAR = "transfers_signing_key_passphrase"
#: Secret ids of this party's own decryption key (the private half of the key partners encrypt to).
DECRYPTION_KEY_VAR = "transfers_decryption_key"
DECRYPTION_KEY_PHRASE_VAR = "transfers_decryption_key_passphrase"


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

    @property
    def armored(self) -> str:
        """The pinned public key alone, ASCII-armoured (``load_recipient_key(..., armored=)`` reads it)."""
        return str(self.key)


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

    @property
    def armored(self) -> str:
        """The key ASCII-armoured (``load_own_signing_key`` reads it): a secret for our own key, still
        protected by its passphrase if it was. Hand it on only in memory, never to a file, argv or env."""
        return str(self.key)


@dataclass(frozen=True)
class DecryptionKey:
    """Our own private key that passed every check in ``load_own_decryption_key``: deliveries to us open with it."""

    fingerprint: str  # the primary key's, equal to the one the agreement pins for us as recipient
    encryption_fingerprint: str  # the (sub)key senders are expected to encrypt to
    algorithm: str
    expires_at: datetime | None
    key: Any = field(repr=False, compare=False)  # pgpy.PGPKey (primary, private)
    passphrase: str | None = field(default=None, repr=False, compare=False)


def load_recipient_key(
    path: Path, pinned_fingerprint: str, *, now: datetime | None = None, margin: timedelta = timedelta(days=7),
    armored: str | None = None,
) -> RecipientKey:
    """Parse a partner's public key and refuse it unless it is safe to encrypt to.

    Args:
        path: Armored or binary OpenPGP public key file; if it holds several keys
            (appended armour blocks too), the pinned one is used.
        pinned_fingerprint: The fingerprint pinned in the agreement.
        now: The time to judge expiry at (default: now, UTC).
        margin: Refuse a key that expires within this long, so a delivery is
            never made to a key the recipient is about to retire.
        armored: The key as ``RecipientKey.armored`` gave it, read instead of ``path``
            (named in messages): how a worker process gets a key already loaded, checked again.

    Returns:
        The key and the (sub)key to encrypt to.

    Raises:
        KeyRefused: The file is missing, unreadable, too large, not public
            keys, holds no key with the pinned fingerprint, expired or expiring within ``margin``,
            revoked, too weak, or without a usable encryption key.
    """
    return _load_partner_key(path, pinned_fingerprint, "encrypt", now, margin,
                             None if armored is None else armored.encode("ascii"))


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
    key = parse_bytes(data, where, pinned, kind="private key")
    if key.is_public:
        raise KeyRefused(f"{where}: holds a public key; it must be this party's armoured PRIVATE signing key")
    fpr = fingerprint_of(key)
    if fpr != pinned:
        raise KeyRefused(
            f"{where}: key {fpr} is not the signing key {pinned} pinned for this party in protocol.yaml "
            "(signing_fingerprint); set the right key, or pin its fingerprint"
        )
    with quiet_pgpy():
        found = check(key, f"{where} (key {fpr})", fpr, now, horizon, "sign", "the key owner")
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
    return SigningKey(path=None, fingerprint=fpr, signing_fingerprint=fingerprint_of(usable), algorithm=algorithm,
                      expires_at=expires_at, key=key, signing_key=usable, private=True,
                      passphrase=passphrase if key.is_protected else None)


def own_key_fingerprint(armored: str) -> str:
    """The primary fingerprint of an armoured private key, to find whose pinned key it is (nothing checked yet).

    Raises:
        KeyRefused: Not one readable private key.
    """
    key = parse_bytes(armored.encode("utf-8") if isinstance(armored, str) else bytes(armored),
                      "the signing key secret", None, kind="private key")
    if key.is_public:
        raise KeyRefused("the signing key secret: holds a public key; it must be this party's armoured PRIVATE "
                         "signing key")
    return fingerprint_of(key)


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
    armored, pinned, passphrase = _own_secret(
        secret, SIGNING_KEY_VAR, SIGNING_KEY_PHRASE_VAR, pinned_fingerprint,
        f"{party}: no signing_fingerprint in protocol.yaml; pin the fingerprint of its signing key")
    try:
        return load_own_signing_key(armored, pinned, passphrase=passphrase, now=now, margin=margin)
    except KeyRefused as exc:
        raise KeyRefused(f"{party}: {exc}") from None


def party_signing_key(secret: Callable[[str], str], protocol: Protocol, party: str, *,
                      now: datetime | None = None, margin: timedelta = timedelta(days=7)) -> SigningKey:
    """The private key ``party`` (a flow's ``from``) signs with, checked against its pin in the register.

    Deliveries and notices both get the key here, so what a recipient verifies
    against is the same pinned ``signing_fingerprint`` whatever it received.

    Raises:
        SecretMissing: ``SIGNING_KEY_VAR`` is not set (the message names it).
        KeyRefused: ``party`` has no ``signing_fingerprint``, or the key is not that one (both named)
            or fails a key check.
    """
    signatory = protocol.signatory(party)
    return own_signing_key(secret, party, signatory.signing_fingerprint if signatory else None, now=now,
                           margin=margin)


def _load_partner_key(path: Path, pinned_fingerprint: str, use: str, now: datetime | None,
                      margin: timedelta, data: bytes | None = None) -> Any:  # RecipientKey / SigningKey by use
    path = Path(path)
    now, horizon = _clock(now, margin)
    pinned = _pinned(pinned_fingerprint, f"key file {path.name}")
    key = parse(path, pinned, data)
    fpr = fingerprint_of(key)
    where = f"key file {path}"
    if fpr != pinned:
        raise KeyRefused(
            f"{where}: fingerprint {fpr} is not the pinned {pinned}; get the recipient's key "
            "again and check its fingerprint with them by another channel"
        )
    where = f"{where} (key {fpr})"
    with quiet_pgpy():
        usable, algorithm, expires_at = check(key, where, fpr, now, horizon, use,
                                               "the recipient" if use == "encrypt" else "the partner")
    if use == "encrypt":
        return RecipientKey(path=path, fingerprint=fpr, encryption_fingerprint=fingerprint_of(usable), algorithm=algorithm,
                            expires_at=expires_at, key=key, encryption_key=usable)
    return SigningKey(path=path, fingerprint=fpr, signing_fingerprint=fingerprint_of(usable), algorithm=algorithm,
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


def load_own_decryption_key(armored: str, pinned_fingerprint: str, *, passphrase: str | None = None,
                            now: datetime | None = None, margin: timedelta = timedelta(days=7)) -> DecryptionKey:
    """Our party's private decryption key (from the secrets backend), checked before it opens a delivery.

    The checks of ``load_recipient_key`` (expiry with ``margin``, revocation, strength, a usable
    encryption (sub)key), on our own key, which must be the one the agreement pins for us.

    Raises:
        KeyRefused: Not one readable private key, not the pinned fingerprint (both named), the
            passphrase does not unlock it, or a key check fails. The message never quotes key material.
    """
    where = "the decryption key secret"
    pinned = _pinned(pinned_fingerprint, where)
    now, horizon = _clock(now, margin)
    key = parse_bytes(armored.encode("utf-8") if isinstance(armored, str) else bytes(armored), where, pinned,
                      kind="private key")
    if key.is_public:
        raise KeyRefused(f"{where}: holds a public key; it must be this party's armoured PRIVATE decryption key")
    fpr = fingerprint_of(key)
    if fpr != pinned:
        raise KeyRefused(f"{where}: key {fpr} is not the key {pinned} the agreement pins for this party as a "
                         "recipient (pgp_fingerprint); set the right key, or correct the pin")
    with quiet_pgpy():
        usable, algorithm, expires_at = check(key, f"{where} (key {fpr})", fpr, now, horizon, "encrypt",
                                              "the key owner")
        if key.is_protected:
            try:
                with key.unlock(passphrase or ""):
                    pass
            except Exception:  # pgpy raises PGPDecryptionError (or others) for a wrong passphrase
                raise KeyRefused(f"{where} (key {fpr}): the passphrase secret does not unlock it "
                                 f"(set {DECRYPTION_KEY_PHRASE_VAR})") from None
    return DecryptionKey(fingerprint=fpr, encryption_fingerprint=fingerprint_of(usable), algorithm=algorithm,
                         expires_at=expires_at, key=key, passphrase=passphrase if key.is_protected else None)


def own_decryption_key(secret: Callable[[str], str], party: str, pinned_fingerprint: str | None, *,
                       now: datetime | None = None, margin: timedelta = timedelta(days=7)) -> DecryptionKey:
    """This party's decryption key from the secrets backend, checked against the agreement's pin for it.

    Args:
        secret: Resolves a secret id (``Resolvers.secret``); raises ``SecretMissing`` for an unset one.
        party: Our signatory id (a flow recipient's ``partner``), for messages.
        pinned_fingerprint: That recipient's ``pgp_fingerprint`` in the agreement.

    Raises:
        SecretMissing: ``DECRYPTION_KEY_VAR`` is not set.
        KeyRefused: No fingerprint is pinned, or ``load_own_decryption_key`` refuses the key.
    """
    armored, pinned, passphrase = _own_secret(
        secret, DECRYPTION_KEY_VAR, DECRYPTION_KEY_PHRASE_VAR, pinned_fingerprint,
        f"{party}: no pgp_fingerprint pinned for it as a recipient; pin its encryption key")
    try:
        return load_own_decryption_key(armored, pinned, passphrase=passphrase, now=now, margin=margin)
    except KeyRefused as exc:
        raise KeyRefused(f"{party}: {exc}") from None


def _own_secret(secret: Callable[[str], str], key_var: str, phrase_var: str, pinned_fingerprint: str | None,
                no_pin: str) -> tuple[str, str, str | None]:
    """Our armoured private key, the fingerprint it must be, and its passphrase if one is set.

    Raises:
        SecretMissing: ``key_var`` is not set (first: the fix is to set it, whatever else is wrong).
        KeyRefused: Nothing is pinned (``no_pin`` says where to pin it).
    """
    armored = secret(key_var)
    if not pinned_fingerprint:
        raise KeyRefused(no_pin)
    try:
        passphrase: str | None = secret(phrase_var)
    except SecretMissing:
        passphrase = None  # optional: an unprotected key in a protected secrets backend is common
    return armored, pinned_fingerprint, passphrase
