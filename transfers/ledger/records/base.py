"""What every ledger record shares: the entry's columns, and the helpers payloads are built with."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Self

from transfers.ledger.chain import Entry


def content_digest(payload: Mapping[str, Any]) -> str:
    """The short content hash in privacy and no-consent dedupe keys (as written since the first release)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stamp(moment: datetime | None) -> str | None:
    """A time as payloads hold it: ISO 8601 to the second (None stays None)."""
    return moment.isoformat(timespec="seconds") if moment is not None else None


def parse_stamp(text: Any) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


@dataclass(frozen=True, kw_only=True)
class Record:
    """What every record shares: the entry's columns. Subclasses add the payload's fields."""

    KIND: ClassVar[str]

    agreement: str
    flow: str | None = None
    logical_date: date | None = None
    recipient: str | None = None
    at: datetime | None = None  # when it happened; None: when it is recorded
    entry: Entry | None = field(default=None, compare=False, repr=False)  # set when read back

    @property
    def when(self) -> datetime:
        """When it happened; for a record read back, when its entry was recorded."""
        if self.at is None:
            raise ValueError(f"{type(self).__name__} record has no time yet: it was not read from the ledger")
        return self.at

    @property
    def seq(self) -> int | None:
        """The entry's position in the chain, for a record read back."""
        return self.entry.seq if self.entry is not None else None

    def dedupe_key(self) -> str | None:
        """The key that makes recording it again a no-op; None for kinds recorded every time."""
        return None

    def to_payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_entry(cls, entry: Entry) -> Self:
        """The record an entry holds.

        Raises:
            ValueError: The entry is of another kind.
        """
        if entry.kind != cls.KIND:
            raise ValueError(f"ledger entry {entry.seq} is a {entry.kind!r} entry, not {cls.KIND!r}")
        return cls.from_parts(entry.payload, dedupe_key=entry.dedupe_key, agreement=entry.agreement,
                              flow=entry.flow, logical_date=entry.logical_date, recipient=entry.recipient,
                              at=entry.at, entry=entry)

    @classmethod
    def from_parts(cls, payload: Mapping[str, Any], *, dedupe_key: str | None = None, **columns: Any) -> Self:
        """The record from a payload and the entry's columns (an entry, or a journalled record)."""
        return cls(**columns, **cls._fields(payload, dedupe_key))

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class RemoteFile:
    """One file at a recipient: a delivery's (with its upload ``status``) or an intent's (without)."""

    remote_path: str
    size: int | None = None
    sha256: str | None = None
    status: str | None = None  # delivered | reconciled; absent in an intent

    def to_dict(self) -> dict[str, Any]:
        item = {"remote_path": self.remote_path, "size": self.size, "sha256": self.sha256}
        return item if self.status is None else {**item, "status": self.status}

    @classmethod
    def from_dict(cls, item: Mapping[str, Any]) -> RemoteFile:
        return cls(item["remote_path"], item.get("size"), item.get("sha256"), item.get("status"))


def ds_of(record: Record) -> str:
    return record.logical_date.isoformat() if record.logical_date else ""
