"""Tier 2 sign-off: each partner signs the agreement file's exact bytes; a flow runs only on a signed version.

Layout: one detached, ASCII-armoured OpenPGP signature per partner, beside the
agreement file and named after it, ``config/agreements/<file>.<partner>.asc``
(e.g. ``mash-referrals.yaml.south-yorkshire-police.asc``); ``gpg --verify
<that file> <agreement file>`` checks one by hand. Re-signing replaces that
partner's file atomically; the files of other partners are left alone.

Invariants:

- A signature counts only if it verifies over the file's bytes as they are now,
  made by the signing (sub)key of the key pinned for that partner in the Tier 1
  register (``signing_fingerprint``, public key in ``keys/<partner>.asc``), and
  that key passes the same checks as any partner key (``load_signing_key``).
  A changed byte, another key, or a refused key is "not signed".
- ``require_signoff`` (the ``check_agreement`` step, so the DAG and ``transfers
  run``, and ``transfers validate``) raises ``AgreementNotSigned`` naming the
  agreement, its version and every partner that has not signed this version.
- The file's hash is ``agreement_sha256``, the one the delivery manifest carries.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import AgreementNotSigned, KeyRefused
from transfers.files import write_atomic

if TYPE_CHECKING:
    from transfers.agreement import Agreement, Protocol
    from transfers.crypto import SigningKey

__all__ = ["Signoff", "agreement_sha256", "require_signoff", "sign_agreement", "signature_path", "signoffs"]


def agreement_sha256(path: Path) -> str:
    """SHA-256 (hex) of the agreement file's bytes: what is signed, and what the manifest carries."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def signature_path(agreement_path: Path, partner: str) -> Path:
    """``<file>.<partner>.asc`` beside the agreement file (a signatory id is a slug: it cannot escape the folder)."""
    agreement_path = Path(agreement_path)
    return agreement_path.with_name(f"{agreement_path.name}.{partner}.asc")


@dataclass(frozen=True)
class Signoff:
    """One partner's sign-off of the agreement file as it is now."""

    partner: str
    fingerprint: str | None  # the pinned signing key (None: nothing pinned)
    signed_at: datetime | None  # when the valid signature was made; None if not signed
    problem: str = ""  # why it does not count: "no signature", "does not verify ...", a refused key

    @property
    def signed(self) -> bool:
        return self.signed_at is not None


def signoffs(path: Path, agreement: Agreement, protocol: Protocol, keys_dir: Path) -> list[Signoff]:
    """Each partner's sign-off of ``path``'s bytes, in the agreement's partner order."""
    from transfers.crypto import load_signing_key, verify_detached

    data = Path(path).read_bytes()
    found = []
    for partner in agreement.partners:
        signatory = protocol.signatory(partner)
        pinned = signatory.signing_fingerprint if signatory else None
        sig_path = signature_path(path, partner)
        if not pinned:
            found.append(Signoff(partner, None, None, "no signing_fingerprint in protocol.yaml"))
            continue
        if not sig_path.is_file():
            found.append(Signoff(partner, pinned, None, f"no signature ({sig_path.name})"))
            continue
        try:
            key = load_signing_key(Path(keys_dir) / f"{partner}.asc", pinned)
        except KeyRefused as exc:
            found.append(Signoff(partner, pinned, None, f"its signing key is refused: {exc}"))
            continue
        signed_at = verify_detached(data, sig_path.read_bytes(), key)
        problem = "" if signed_at else (f"{sig_path.name} is not a valid signature by key {pinned} "
                                        "over this version of the file")
        found.append(Signoff(partner, pinned, signed_at, problem))
    return found


def require_signoff(path: Path, agreement: Agreement, protocol: Protocol, keys_dir: Path) -> list[Signoff]:
    """Every partner's valid sign-off of this version, or ``AgreementNotSigned`` naming who is missing."""
    found = signoffs(path, agreement, protocol, keys_dir)
    missing = [s for s in found if not s.signed]
    if missing:
        digest = agreement_sha256(path)[:12]
        why = "; ".join(f"{s.partner}: {s.problem}" for s in missing)
        raise AgreementNotSigned(
            f"agreement {agreement.id} version {agreement.version} (sha256 {digest}) is not signed by "
            f"{', '.join(s.partner for s in missing)} ({why}); nothing runs until each signs this version "
            f"(`transfers agreement sign {agreement.id}` with its own signing key)",
            agreement=agreement.id, version=agreement.version, unsigned=tuple(s.partner for s in missing))
    return found


def sign_agreement(path: Path, agreement: Agreement, protocol: Protocol, key: SigningKey,
                   partner: str | None = None) -> tuple[str, Path]:
    """Sign the file's bytes with our key for the partner it is pinned to; returns (partner, signature file).

    Args:
        partner: Sign as this partner (its pin must be the key's); default the first partner pinned to the key.

    Raises:
        KeyRefused: The key is pinned for no partner of the agreement (its fingerprint named), or not for ``partner``.
    """
    from transfers.crypto import sign_detached

    wanted = partner
    partner = next((p for p in agreement.partners if wanted in (None, p)
                    and (s := protocol.signatory(p)) is not None and s.signing_fingerprint == key.fingerprint), None)
    if partner is None and wanted is not None:
        raise KeyRefused(f"signing key {key.fingerprint} is not the signing_fingerprint pinned for {wanted} "
                         f"in protocol.yaml (agreement {agreement.id})")
    if partner is None:
        raise KeyRefused(f"signing key {key.fingerprint} is not the signing_fingerprint pinned for any partner of "
                         f"agreement {agreement.id} ({', '.join(agreement.partners)}) in protocol.yaml")
    data = Path(path).read_bytes()
    target = signature_path(path, partner)
    write_atomic(target, sign_detached(data, key), mode=0o644)  # public; replaces this partner's earlier signature whole
    return partner, target
