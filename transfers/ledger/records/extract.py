"""The record of what an extract read: the source object's exact version (S3: version id and ETag)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, content_digest, ds_of


@dataclass(frozen=True, kw_only=True)
class Extracted(Record):
    """The object a flow run's extract read (``source``: ``s3``), so a disclosure can be traced to its bytes.

    Written by the extract step for a source whose objects have versions; a
    disclosure of the same (flow, logical date) was made from the last such entry
    before it. Names, ids and sizes only: never a record value.
    """

    KIND: ClassVar[str] = "extract"
    source: str = "s3"
    connection: str | None = None
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None  # None: a bucket that never had versioning
    etag: str | None = None
    size: int | None = None
    format: str | None = None
    rows: int = 0

    def dedupe_key(self) -> str:
        # Re-reading the same version records nothing new; a new version read for the date is a new entry.
        return f"extract:{self.flow}:{ds_of(self)}:{content_digest(self.to_payload())}"

    def to_payload(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "connection": self.connection,
            "bucket": self.bucket,
            "key": self.key,
            "version_id": self.version_id,
            "etag": self.etag,
            "size": self.size,
            "format": self.format,
            "rows": self.rows,
        }

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {
            "source": payload.get("source", "s3"),
            "connection": payload.get("connection"),
            "bucket": payload.get("bucket"),
            "key": payload.get("key"),
            "version_id": payload.get("version_id"),
            "etag": payload.get("etag"),
            "size": payload.get("size"),
            "format": payload.get("format"),
            "rows": int(payload.get("rows") or 0),
        }
