"""Records of the exchange between two parties: a delivery received (at the recipient), its
receipt verified (at the sender), and a receipt that did not verify (at the sender, never counted).

``delivery_id`` is ``receipt.delivery_id(...)``: agreement, flow, logical date and recipient, the
same string at both ends, so the recipient's ``receipt`` and the sender's ``acknowledgement`` of one
delivery can be put side by side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, RemoteFile


@dataclass(frozen=True, kw_only=True)
class Received(Record):
    """At the recipient: one delivery accepted (loaded into its store) or rejected (quarantined), and
    the signed receipt it returned. ``recipient`` is this party; ``sender`` the flow's sender."""

    KIND: ClassVar[str] = "receipt"
    delivery_id: str
    sender: str
    status: str  # accepted | rejected
    reason: str = ""
    manifest_sha256: str | None = None
    rows: int = 0
    files: tuple[RemoteFile, ...] = ()  # name (as remote_path), size and SHA-256 as received
    receipt_sha256: str | None = None  # of the receipt document returned (the bytes the signature covers)
    received_at: str | None = None
    destroy_by: str | None = None  # the controller's date the signed manifest carried

    @staticmethod
    def key_for(delivery_id: str, manifest_sha256: str | None) -> str:
        return f"receipt:{delivery_id}:{manifest_sha256 or '-'}"

    def dedupe_key(self) -> str:
        return self.key_for(self.delivery_id, self.manifest_sha256)

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "sender": self.sender, "status": self.status, "reason": self.reason,
                "manifest_sha256": self.manifest_sha256, "rows": self.rows,
                "files": [f.to_dict() for f in self.files], "receipt_sha256": self.receipt_sha256,
                "received_at": self.received_at, "destroy_by": self.destroy_by}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""), "sender": payload.get("sender", ""),
                "status": payload.get("status", ""), "reason": payload.get("reason", ""),
                "manifest_sha256": payload.get("manifest_sha256"), "rows": int(payload.get("rows") or 0),
                "files": tuple(RemoteFile.from_dict(f) for f in payload.get("files") or ()),
                "receipt_sha256": payload.get("receipt_sha256"), "received_at": payload.get("received_at"),
                "destroy_by": payload.get("destroy_by")}


@dataclass(frozen=True, kw_only=True)
class Acknowledgement(Record):
    """At the sender: the recipient's verified, signed receipt for one disclosure.

    ``status`` is ``acknowledged`` (the recipient accepted and loaded it) or ``rejected`` (with the
    recipient's reason). Only a receipt whose signature verified against the recipient's pinned
    signing key and whose hashes are the ones sent is ever recorded as this kind.
    """

    KIND: ClassVar[str] = "acknowledgement"
    delivery_id: str
    status: str  # acknowledged | rejected
    reason: str = ""
    manifest_sha256: str | None = None
    rows: int = 0
    receipt_sha256: str | None = None
    signer_fingerprint: str | None = None
    received_at: str | None = None  # as the recipient's receipt says
    recipient_ledger_head: dict[str, Any] | None = None

    @staticmethod
    def key_for(delivery_id: str) -> str:
        return f"acknowledgement:{delivery_id}"

    def dedupe_key(self) -> str:
        return self.key_for(self.delivery_id)

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "status": self.status, "reason": self.reason,
                "manifest_sha256": self.manifest_sha256, "rows": self.rows, "receipt_sha256": self.receipt_sha256,
                "signer_fingerprint": self.signer_fingerprint, "received_at": self.received_at,
                "recipient_ledger_head": self.recipient_ledger_head}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""), "status": payload.get("status", ""),
                "reason": payload.get("reason", ""), "manifest_sha256": payload.get("manifest_sha256"),
                "rows": int(payload.get("rows") or 0), "receipt_sha256": payload.get("receipt_sha256"),
                "signer_fingerprint": payload.get("signer_fingerprint"), "received_at": payload.get("received_at"),
                "recipient_ledger_head": payload.get("recipient_ledger_head")}


@dataclass(frozen=True, kw_only=True)
class ReceiptRefused(Record):
    """At the sender: a receipt found for a disclosure that did not verify (wrong or no signature, other
    hashes than were sent, unreadable). Kept as evidence; it never counts as an acknowledgement."""

    KIND: ClassVar[str] = "receipt-refused"
    delivery_id: str
    reason: str
    receipt_sha256: str | None = None

    def dedupe_key(self) -> str:
        return f"receipt-refused:{self.delivery_id}:{self.receipt_sha256 or '-'}"

    def to_payload(self) -> dict[str, Any]:
        return {"delivery_id": self.delivery_id, "reason": self.reason, "receipt_sha256": self.receipt_sha256}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"delivery_id": payload.get("delivery_id", ""), "reason": payload.get("reason", ""),
                "receipt_sha256": payload.get("receipt_sha256")}
