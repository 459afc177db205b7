"""Records of a notice's round trip: acted on at the recipient, and confirmed back at the sender.

At the recipient, a withdrawal or correction notice from a flow's sender is ``NoticeApplied`` once its
rows are deleted (or marked) and the signed confirmation is written, or ``NoticeRefused`` when it did
not verify (never acted on). At the sender, the recipient's signed confirmation is ``NoticeConfirmed``
once it verifies against the recipient's pinned key and names the notice sent, else
``NoticeConfirmationRefused`` (kept as evidence, never counted).

``reference`` is the notice's tag (the 12 hex digits in its file name and its ``reference`` key), the
same string at both ends. Payloads hold names, counts, hashes and fingerprints, never pseudonyms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record


@dataclass(frozen=True, kw_only=True)
class NoticeApplied(Record):
    """At the recipient: a verified notice acted on. ``recipient`` is this party, ``flow`` the notice's
    ``<agreement>.<flow>``; ``rows`` deleted (withdrawal) or marked (correction), in ``tables``."""

    KIND: ClassVar[str] = "notice-applied"
    reference: str
    notice: str  # withdrawal | correction
    sender: str
    rows: int = 0
    tables: tuple[str, ...] = ()
    notice_sha256: str | None = None  # of the encrypted file as received
    confirmation_sha256: str | None = None  # of the confirmation document returned
    applied_at: str | None = None

    @staticmethod
    def key_for(reference: str) -> str:
        return f"notice-applied:{reference}"

    def dedupe_key(self) -> str:
        return self.key_for(self.reference)

    def to_payload(self) -> dict[str, Any]:
        return {"reference": self.reference, "notice": self.notice, "sender": self.sender, "rows": self.rows,
                "tables": list(self.tables), "notice_sha256": self.notice_sha256,
                "confirmation_sha256": self.confirmation_sha256, "applied_at": self.applied_at}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"reference": payload.get("reference", ""), "notice": payload.get("notice", ""),
                "sender": payload.get("sender", ""), "rows": int(payload.get("rows") or 0),
                "tables": tuple(payload.get("tables") or ()), "notice_sha256": payload.get("notice_sha256"),
                "confirmation_sha256": payload.get("confirmation_sha256"), "applied_at": payload.get("applied_at")}


@dataclass(frozen=True, kw_only=True)
class NoticeRefused(Record):
    """At the recipient: a notice file that did not verify (another signer, not ours, unreadable, not
    for us). Nothing was acted on; the file is quarantined."""

    KIND: ClassVar[str] = "notice-refused"
    name: str  # the file's name in the inbox
    reason: str
    notice_sha256: str

    def dedupe_key(self) -> str:
        return f"notice-refused:{self.notice_sha256}"

    def to_payload(self) -> dict[str, Any]:
        return {"name": self.name, "reason": self.reason, "notice_sha256": self.notice_sha256}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"name": payload.get("name", ""), "reason": payload.get("reason", ""),
                "notice_sha256": payload.get("notice_sha256", "")}


@dataclass(frozen=True, kw_only=True)
class NoticeConfirmed(Record):
    """At the sender: the recipient's verified confirmation that it acted on notice ``reference``.
    ``recipient`` is the partner, ``flow`` the notice's ``<agreement>.<flow>``."""

    KIND: ClassVar[str] = "notice-confirmed"
    reference: str
    notice: str
    rows: int = 0
    confirmation_sha256: str | None = None
    signer_fingerprint: str | None = None
    applied_at: str | None = None  # as the recipient's confirmation says
    recipient_ledger_head: dict[str, Any] | None = None

    @staticmethod
    def key_for(recipient: str, reference: str) -> str:
        return f"notice-confirmed:{recipient}:{reference}"

    def dedupe_key(self) -> str:
        return self.key_for(self.recipient or "", self.reference)

    def to_payload(self) -> dict[str, Any]:
        return {"reference": self.reference, "notice": self.notice, "rows": self.rows,
                "confirmation_sha256": self.confirmation_sha256, "signer_fingerprint": self.signer_fingerprint,
                "applied_at": self.applied_at, "recipient_ledger_head": self.recipient_ledger_head}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"reference": payload.get("reference", ""), "notice": payload.get("notice", ""),
                "rows": int(payload.get("rows") or 0), "confirmation_sha256": payload.get("confirmation_sha256"),
                "signer_fingerprint": payload.get("signer_fingerprint"), "applied_at": payload.get("applied_at"),
                "recipient_ledger_head": payload.get("recipient_ledger_head")}


@dataclass(frozen=True, kw_only=True)
class NoticeConfirmationRefused(Record):
    """At the sender: a confirmation found for a notice that did not verify or names another notice.
    Kept as evidence; it never counts as a confirmation."""

    KIND: ClassVar[str] = "notice-confirmation-refused"
    reference: str
    reason: str
    confirmation_sha256: str | None = None

    def dedupe_key(self) -> str:
        return f"notice-confirmation-refused:{self.recipient or ''}:{self.reference}:{self.confirmation_sha256 or '-'}"

    def to_payload(self) -> dict[str, Any]:
        return {"reference": self.reference, "reason": self.reason, "confirmation_sha256": self.confirmation_sha256}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"reference": payload.get("reference", ""), "reason": payload.get("reason", ""),
                "confirmation_sha256": payload.get("confirmation_sha256")}
