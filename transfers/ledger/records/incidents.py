"""Security incidents, recorded for breach assessment (ISP protocol §6.2; ``transfers.incidents`` writes them).

An incident is one event that may be a breach and must reach the IG contact at once: a host key that
does not match its pin, a delivery or receipt whose signature fails, a key refused as revoked, a subject
found in an extract after a withdrawal notice was sent for it. The payload names what, where (flow,
partner, host:port or file name) and the evidence (key fingerprints, file hashes, the project's own error
text), never record values or pseudonyms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record

#: The kinds of incident recorded today (``Incident.what``).
HOST_KEY_MISMATCH = "host-key-mismatch"
SIGNATURE_FAILED = "signature-failed"
KEY_REVOKED = "key-revoked"
SUBJECT_AFTER_WITHDRAWAL = "subject-after-withdrawal"
WHATS = (HOST_KEY_MISMATCH, SIGNATURE_FAILED, KEY_REVOKED, SUBJECT_AFTER_WITHDRAWAL)


@dataclass(frozen=True, kw_only=True)
class Incident(Record):
    """One security incident. ``recipient`` (the entry's column) is the partner concerned.

    ``what``: one of ``WHATS``; ``party``: the party that saw it (this deployment); ``where``: host:port or
    file name; ``evidence``: a fingerprint, hash or other identifier that makes two events the same incident
    (the dedupe key holds it); ``detail``: our own error text (names files, fields, keys and hosts);
    ``notified``: whether the IG contact was sent the notice when it was recorded, ``notice`` how (or why
    not: no SMTP connection, no IG contact, the send failed).
    """

    KIND: ClassVar[str] = "incident"
    what: str
    party: str = ""
    where: str = ""
    evidence: str = ""
    detail: str = ""
    notified: bool = False
    notice: str = ""

    @staticmethod
    def key_for(what: str, flow: str | None, logical_date: str, partner: str | None, evidence: str) -> str:
        return f"incident:{what}:{flow or '-'}:{logical_date or '-'}:{partner or '-'}:{evidence or '-'}"

    def dedupe_key(self) -> str:
        day = self.logical_date.isoformat() if self.logical_date else ""
        return self.key_for(self.what, self.flow, day, self.recipient, self.evidence)

    def to_payload(self) -> dict[str, Any]:
        return {"what": self.what, "party": self.party, "where": self.where, "evidence": self.evidence,
                "detail": self.detail, "notified": self.notified, "notice": self.notice}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"what": payload.get("what", ""), "party": payload.get("party", ""), "where": payload.get("where", ""),
                "evidence": payload.get("evidence", ""), "detail": payload.get("detail", ""),
                "notified": bool(payload.get("notified")), "notice": payload.get("notice", "")}
