"""Records of retention: a copy archived, a copy deleted (the certificate), a deletion that failed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, ds_of, parse_stamp, stamp


@dataclass(frozen=True, kw_only=True)
class Archived(Record):
    """One delivered file copied to the flow's archive, with the date it must be deleted by."""

    KIND: ClassVar[str] = "archive"
    store: str  # local | s3
    path: str  # local path or s3://bucket/key; its last part is the file's name
    size: int | None = None
    sha256: str | None = None
    created: datetime
    due: datetime
    rule: str = ""
    place: str = "archive"

    @staticmethod
    def key_for(flow: str, ds: str, partner: str, name: str) -> str:
        return f"archive:{flow}:{ds}:{partner}:{name}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def dedupe_key(self) -> str:
        return self.key_for(self.flow or "", ds_of(self), self.recipient or "", self.name)

    def to_payload(self) -> dict[str, Any]:
        return {"place": self.place, "store": self.store, "path": self.path, "size": self.size,
                "sha256": self.sha256, "created": stamp(self.created), "due": stamp(self.due), "rule": self.rule}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"place": payload.get("place", "archive"), "store": payload.get("store", "local"),
                "path": payload.get("path", ""), "size": payload.get("size"), "sha256": payload.get("sha256"),
                "created": parse_stamp(payload.get("created")), "due": parse_stamp(payload.get("due")),
                "rule": payload.get("rule", "")}


@dataclass(frozen=True, kw_only=True)
class _PurgeAttempt(Record):
    """What a deletion and a failed deletion both say about the copy."""

    place: str
    store: str = "local"
    path: str
    created: datetime | None = None
    due: datetime | None = None
    rule: str = ""
    as_of: datetime | None = None  # the moment due dates were judged at (``purge --as-of``)

    def _common(self) -> dict[str, Any]:
        return {"place": self.place, "store": self.store, "path": self.path,
                "created": stamp(self.created), "due": stamp(self.due), "rule": self.rule,
                "as_of": stamp(self.as_of)}

    @classmethod
    def _common_fields(cls, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"place": payload.get("place", ""), "store": payload.get("store", "local"),
                "path": payload.get("path", ""), "created": parse_stamp(payload.get("created")),
                "due": parse_stamp(payload.get("due")), "rule": payload.get("rule", ""),
                "as_of": parse_stamp(payload.get("as_of"))}


@dataclass(frozen=True, kw_only=True)
class Purged(_PurgeAttempt):
    """A copy deleted and checked gone: the certificate of destruction.

    ``key`` is the dedupe key the purge chose (see ``remote_key``, ``s3_key`` and
    ``local_key``); a local one holds the copy's full creation time, which the
    payload rounds to seconds, so it is carried rather than rebuilt.
    """

    KIND: ClassVar[str] = "purge"
    key: str
    size: int | None = None
    sha256: str | None = None
    deleted_at: datetime | None = None
    verified: str = ""
    note: str | None = None
    versions_deleted: int | None = None  # S3 only

    @staticmethod
    def remote_key(flow: str, recipient: str | None, path: str) -> str:
        return f"purge:remote:{flow}:{recipient}:{path}"

    @staticmethod
    def s3_key(url: str) -> str:
        return f"purge:archive:{url}"

    @staticmethod
    def local_key(place: str, path: str, sha256: str | None, created: datetime) -> str:
        return f"purge:{place}:{path}:{sha256}:{created.isoformat()}"

    def dedupe_key(self) -> str:
        return self.key

    def to_payload(self) -> dict[str, Any]:
        payload = {**self._common(), "size": self.size, "sha256": self.sha256,
                   "deleted_at": stamp(self.deleted_at), "verified": self.verified}
        if self.versions_deleted is not None:
            payload["versions_deleted"] = self.versions_deleted
        if self.note:
            payload["note"] = self.note
        return payload

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {**cls._common_fields(payload), "key": dedupe_key or "", "size": payload.get("size"),
                "sha256": payload.get("sha256"), "deleted_at": parse_stamp(payload.get("deleted_at")),
                "verified": payload.get("verified", ""), "note": payload.get("note"),
                "versions_deleted": payload.get("versions_deleted")}


@dataclass(frozen=True, kw_only=True)
class PurgeFailed(_PurgeAttempt):
    """A deletion that failed; the copy stays due and the next purge tries again."""

    KIND: ClassVar[str] = "purge-failed"
    error: str = ""
    attempted_at: datetime | None = None

    def to_payload(self) -> dict[str, Any]:
        return {**self._common(), "error": self.error,
                "attempted_at": stamp(self.attempted_at)}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {**cls._common_fields(payload), "error": payload.get("error", ""),
                "attempted_at": parse_stamp(payload.get("attempted_at"))}
