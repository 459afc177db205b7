"""Records of destruction certificates at the data controller: one verified (it counts), one refused (it never does).

A recipient destroys the rows of a delivery on the controller's date and returns a certificate signed
with its signing key (:mod:`transfers.certificate`). The controller records ``DestructionCertified``
only for a certificate whose signature verified against the recipient's pinned signing key and that
names exactly the delivery disclosed (delivery id, manifest hash, every row). Anything else is
``CertificateRefused``, kept as evidence with the certificate's hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record


@dataclass(frozen=True, kw_only=True)
class DestructionCertified(Record):
    """At the controller: a recipient's verified, signed certificate that one delivery's rows are destroyed.

    ``recipient`` (the entry's column) is the party that destroyed them; ``signer_fingerprint`` the
    pinned key the signature verified against; ``destroyed_at`` and ``rule`` as the certificate says.
    """

    KIND: ClassVar[str] = "destruction-certified"
    delivery_id: str
    certificate_sha256: str
    signer_fingerprint: str | None = None
    manifest_sha256: str | None = None
    rows: int = 0
    destroyed_at: str | None = None  # as the recipient's certificate says
    rule: str = ""
    recipient_ledger_head: dict[str, Any] | None = None

    @staticmethod
    def key_for(delivery_id: str) -> str:
        return f"destruction-certified:{delivery_id}"

    def dedupe_key(self) -> str:
        return self.key_for(self.delivery_id)

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "certificate_sha256": self.certificate_sha256,
                "signer_fingerprint": self.signer_fingerprint, "manifest_sha256": self.manifest_sha256,
                "rows": self.rows, "destroyed_at": self.destroyed_at, "rule": self.rule,
                "recipient_ledger_head": self.recipient_ledger_head}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""),
                "certificate_sha256": payload.get("certificate_sha256", ""),
                "signer_fingerprint": payload.get("signer_fingerprint"),
                "manifest_sha256": payload.get("manifest_sha256"), "rows": int(payload.get("rows") or 0),
                "destroyed_at": payload.get("destroyed_at"), "rule": payload.get("rule", ""),
                "recipient_ledger_head": payload.get("recipient_ledger_head")}


@dataclass(frozen=True, kw_only=True)
class CertificateRefused(Record):
    """At the controller: a destruction certificate found that did not verify (no or another signature, another
    delivery, manifest or row count, unreadable). Kept as evidence; it never counts as destruction."""

    KIND: ClassVar[str] = "certificate-refused"
    delivery_id: str
    reason: str
    certificate_sha256: str | None = None

    def dedupe_key(self) -> str:
        return f"certificate-refused:{self.delivery_id}:{self.certificate_sha256 or '-'}"

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "reason": self.reason, "certificate_sha256": self.certificate_sha256}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""), "reason": payload.get("reason", ""),
                "certificate_sha256": payload.get("certificate_sha256")}


@dataclass(frozen=True, kw_only=True)
class CertificateIssued(Record):
    """At the recipient: the destruction certificate it signed and returned for one delivery (or recorded for
    itself, when it is the controller too). ``sent_to`` says where: ``inbox`` (its own SFTP server's
    ``receipts/`` folder), ``mailbox`` (uploaded), or ``self``."""

    KIND: ClassVar[str] = "certificate-issued"
    delivery_id: str
    controller: str
    certificate_sha256: str
    rows: int = 0
    sent_to: str = ""

    @staticmethod
    def key_for(delivery_id: str) -> str:
        return f"certificate-issued:{delivery_id}"

    def dedupe_key(self) -> str:
        return self.key_for(self.delivery_id)

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "controller": self.controller,
                "certificate_sha256": self.certificate_sha256, "rows": self.rows, "sent_to": self.sent_to}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""), "controller": payload.get("controller", ""),
                "certificate_sha256": payload.get("certificate_sha256", ""), "rows": int(payload.get("rows") or 0),
                "sent_to": payload.get("sent_to", "")}
