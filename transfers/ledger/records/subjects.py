"""Records of data subjects' rights: a withdrawal, and the notices sent to recipients."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, RemoteFile


@dataclass(frozen=True, kw_only=True)
class Withdrawal(Record):
    """A subject's withdrawal, held to the withdrawals register by ``subject verify``."""

    KIND: ClassVar[str] = "withdrawal"
    lookup: str

    def dedupe_key(self) -> str:
        return f"withdrawal:{self.agreement}:{self.lookup}"

    def to_payload(self) -> dict[str, Any]:
        return {"lookup": self.lookup}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"lookup": payload.get("lookup", "")}


@dataclass(frozen=True, kw_only=True)
class Notice(Record):
    """A withdrawal or correction notice sent to a recipient of the subject.

    ``lookup`` and ``occasion`` are only in the dedupe key (the payload names the
    subject by pseudonym alone); a record read back recovers them from it.
    """

    KIND: ClassVar[str] = "notice"
    notice: str  # withdrawal | correction
    lookup: str = ""
    occasion: str = ""
    pseudonyms: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    reference: str = ""
    recipient_fingerprint: str | None = None
    host: str | None = None
    file: RemoteFile | None = None

    @staticmethod
    def key_for(notice: str, flow: str, partner: str, lookup: str, occasion: str) -> str:
        return f"notice:{notice}:{flow}:{partner}:{lookup}:{occasion}"

    def dedupe_key(self) -> str:
        return self.key_for(self.notice, self.flow or "", self.recipient or "", self.lookup, self.occasion)

    def to_payload(self) -> dict[str, Any]:
        return {"notice": self.notice, "pseudonyms": list(self.pseudonyms), "fields": list(self.fields),
                "reference": self.reference, "recipient_fingerprint": self.recipient_fingerprint,
                "host": self.host, "file": self.file.to_dict() if self.file else None}

    @classmethod
    def from_parts(cls, payload: Mapping[str, Any], *, dedupe_key: str | None = None, **columns: Any) -> Notice:
        notice = payload.get("notice", "")
        prefix = f"notice:{notice}:{columns.get('flow') or ''}:{columns.get('recipient') or ''}:"
        lookup, occasion = "", ""
        if dedupe_key and dedupe_key.startswith(prefix):
            lookup, _, occasion = dedupe_key[len(prefix):].partition(":")
        return super().from_parts(payload, dedupe_key=dedupe_key, lookup=lookup, occasion=occasion, **columns)

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        file = payload.get("file")
        return {"notice": payload.get("notice", ""), "pseudonyms": tuple(payload.get("pseudonyms") or ()),
                "fields": tuple(payload.get("fields") or ()), "reference": payload.get("reference", ""),
                "recipient_fingerprint": payload.get("recipient_fingerprint"), "host": payload.get("host"),
                "file": RemoteFile.from_dict(file) if file else None}
