"""Records of a delivery: a refused recipient key, the intent before upload, the disclosure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, RemoteFile, ds_of


@dataclass(frozen=True, kw_only=True)
class RecipientKeyRefused(Record):
    """A recipient's OpenPGP key failed its checks, so nothing was sent to it (names the file, never key material)."""

    KIND: ClassVar[str] = "key-refused"
    partner: str
    fingerprint: str | None = None
    key_file: str | None = None
    reason: str = ""

    def to_payload(self) -> dict[str, Any]:
        return {"partner": self.partner, "fingerprint": self.fingerprint, "key_file": self.key_file,
                "reason": self.reason}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"partner": payload.get("partner", ""), "fingerprint": payload.get("fingerprint"),
                "key_file": payload.get("key_file"), "reason": payload.get("reason", "")}


@dataclass(frozen=True, kw_only=True)
class DeliveryIntent(Record):
    """Before the first byte leaves: the files about to reach a recipient (so purge can find them)."""

    KIND: ClassVar[str] = "delivery-intent"
    disclosure_key: str
    host: str | None = None
    remote_dir: str | None = None
    files: tuple[RemoteFile, ...] = ()

    @staticmethod
    def key_for(disclosure_key: str) -> str:
        return f"intent:{disclosure_key}"

    def dedupe_key(self) -> str:
        return self.key_for(self.disclosure_key)

    def to_payload(self) -> dict[str, Any]:
        return {"disclosure_key": self.disclosure_key, "host": self.host, "remote_dir": self.remote_dir,
                "files": [f.to_dict() for f in self.files]}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"disclosure_key": payload.get("disclosure_key", ""), "host": payload.get("host"),
                "remote_dir": payload.get("remote_dir"),
                "files": tuple(RemoteFile.from_dict(f) for f in payload.get("files") or ())}


@dataclass(frozen=True, kw_only=True)
class Disclosure(Record):
    """One delivery to one recipient for one (flow, logical date): what, to whom, on what basis."""

    KIND: ClassVar[str] = "disclosure"
    status: str = "delivered"  # delivered | reconciled
    sender: str | None = None
    purposes: tuple[str, ...] = ()
    legal_basis: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()
    rows: int = 0
    recipient_fingerprint: str | None = None
    host: str | None = None
    remote_dir: str | None = None
    pseudonym_key_id: str | None = None
    subjects: dict[str, Any] | None = None  # {"subjects": count, "subjects_sha256": hex}; the rows are beside the ledger
    files: tuple[RemoteFile, ...] = ()

    @staticmethod
    def key_for(flow: str, ds: str, partner: str) -> str:
        """The disclosure key of ``partner`` for ``flow`` on ``ds`` (also the subject index's reference)."""
        return f"disclosure:{flow}:{ds}:{partner}"

    def dedupe_key(self) -> str:
        return self.key_for(self.flow or "", ds_of(self), self.recipient or "")

    @property
    def subject_count(self) -> int | None:
        return self.subjects.get("subjects") if self.subjects else None

    @property
    def subjects_sha256(self) -> str | None:
        return self.subjects.get("subjects_sha256") if self.subjects else None

    def to_payload(self) -> dict[str, Any]:
        return {"status": self.status, "sender": self.sender, "purposes": list(self.purposes),
                "legal_basis": list(self.legal_basis), "fields": list(self.fields), "rows": self.rows,
                "recipient_fingerprint": self.recipient_fingerprint, "host": self.host,
                "remote_dir": self.remote_dir, "pseudonym_key_id": self.pseudonym_key_id,
                "subjects": self.subjects, "files": [f.to_dict() for f in self.files]}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"status": payload.get("status", "delivered"), "sender": payload.get("sender"),
                "purposes": tuple(payload.get("purposes") or ()),
                "legal_basis": tuple(payload.get("legal_basis") or ()),
                "fields": tuple(payload.get("fields") or ()), "rows": int(payload.get("rows") or 0),
                "recipient_fingerprint": payload.get("recipient_fingerprint"), "host": payload.get("host"),
                "remote_dir": payload.get("remote_dir"), "pseudonym_key_id": payload.get("pseudonym_key_id"),
                "subjects": payload.get("subjects"),
                "files": tuple(RemoteFile.from_dict(f) for f in payload.get("files") or ())}
