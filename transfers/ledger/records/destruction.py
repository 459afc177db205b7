"""Records of the recipient's retention: received data destroyed on the controller's date, and legal holds.

``Destroyed`` is written at the recipient (``recipient`` is this party) for each received delivery
whose rows were deleted from its store (``place`` ``received``), or each quarantined delivery whose
files were deleted (``place`` ``quarantine``). ``LegalHold`` is an operator placing or lifting a
hold that suspends destruction (``transfers hold``); it names a delivery or a subject by pseudonym.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, RemoteFile, parse_stamp, stamp


@dataclass(frozen=True, kw_only=True)
class Destroyed(Record):
    """At the recipient: what was destroyed of one received delivery, under which rule, checked gone.

    ``rows`` is every row of the delivery destroyed so far. ``complete`` is False when rows of
    subjects under a legal hold were kept (``held_rows``); the rest follow once the hold is
    lifted, in a later ``Destroyed`` record with ``complete`` True. A quarantined delivery's
    record names its ``files`` (as received, still encrypted) and ``path`` (the folder).
    """

    KIND: ClassVar[str] = "destroyed"
    place: str  # received | quarantine
    delivery_id: str
    sender: str = ""
    controller: str = ""
    rows: int = 0
    held_rows: int = 0
    complete: bool = True
    destroy_by: str | None = None  # the controller's date (ISO), from the signed manifest; None if unknown
    rule: str = ""  # e.g. "controller rotherham-childrens-services P6Y (manifest)"
    manifest_sha256: str | None = None
    path: str = ""  # the store table, or the quarantine folder
    created: datetime | None = None  # received_at, or quarantined_at
    files: tuple[RemoteFile, ...] = ()
    destroyed_at: datetime | None = None
    verified: str = ""
    as_of: datetime | None = None  # the moment due dates were judged at (``purge --as-of``)

    @staticmethod
    def key_for(delivery_id: str, rows: int | None = None) -> str:
        """A delivery's complete destruction (``rows`` None), or a partial one at ``rows`` destroyed so far."""
        return f"destroyed:{delivery_id}" if rows is None else f"destroyed:{delivery_id}:partial:{rows}"

    @staticmethod
    def quarantine_key(path: str, created: datetime | None) -> str:
        return f"destroyed:quarantine:{path}:{stamp(created)}"

    def dedupe_key(self) -> str:
        if self.place == "quarantine":
            return self.quarantine_key(self.path, self.created)
        return self.key_for(self.delivery_id, None if self.complete else self.rows)

    def to_payload(self) -> dict[str, Any]:
        return {"place": self.place, "delivery_id": self.delivery_id, "sender": self.sender,
                "controller": self.controller, "rows": self.rows, "held_rows": self.held_rows,
                "complete": self.complete, "destroy_by": self.destroy_by, "rule": self.rule,
                "manifest_sha256": self.manifest_sha256, "path": self.path, "created": stamp(self.created),
                "files": [f.to_dict() for f in self.files], "destroyed_at": stamp(self.destroyed_at),
                "verified": self.verified, "as_of": stamp(self.as_of)}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"place": payload.get("place", "received"), "delivery_id": payload.get("delivery_id", ""),
                "sender": payload.get("sender", ""), "controller": payload.get("controller", ""),
                "rows": int(payload.get("rows") or 0), "held_rows": int(payload.get("held_rows") or 0),
                "complete": payload.get("complete", True) is not False, "destroy_by": payload.get("destroy_by"),
                "rule": payload.get("rule", ""), "manifest_sha256": payload.get("manifest_sha256"),
                "path": payload.get("path", ""), "created": parse_stamp(payload.get("created")),
                "files": tuple(RemoteFile.from_dict(f) for f in payload.get("files") or ()),
                "destroyed_at": parse_stamp(payload.get("destroyed_at")), "verified": payload.get("verified", ""),
                "as_of": parse_stamp(payload.get("as_of"))}


@dataclass(frozen=True, kw_only=True)
class LegalHold(Record):
    """A legal hold placed (``action`` ``add``) or lifted (``lift``) on a delivery or a subject.

    ``scope`` ``delivery``: ``target`` is a delivery id. ``scope`` ``subject``: ``target`` is the
    subject's pseudonym as the flow's subject column holds it, in every received table of
    ``agreement``. ``by`` is who did it (the OS user, or ``--by``); ``reason`` is theirs, and
    should name a case, never a person. Every add and lift is its own entry (no dedupe key).
    """

    KIND: ClassVar[str] = "legal-hold"
    action: str  # add | lift
    scope: str  # delivery | subject
    target: str
    reason: str = ""
    by: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"action": self.action, "scope": self.scope, "target": self.target, "reason": self.reason,
                "by": self.by}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"action": payload.get("action", ""), "scope": payload.get("scope", ""),
                "target": payload.get("target", ""), "reason": payload.get("reason", ""), "by": payload.get("by", "")}
