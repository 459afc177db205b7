"""The ledger's record contract: one frozen dataclass per kind of entry.

Each class names its ``KIND``, builds the dedupe key (``dedupe_key()``) and the
payload (``to_payload()``) the entry is written with, and reads an entry back
(``from_entry``). Writers and readers go through these classes, never through
payload keys by string, so renaming a key is one change here, not a silent
mismatch between the writer and the purge, audit or IG report that reads it.

Invariants, because the ledger is evidence and is hash-chained:

* ``to_payload()`` and ``dedupe_key()`` produce exactly what earlier code wrote
  (same key names, same key strings), so old entries keep verifying and a re-run
  still dedupes against entries written before these classes existed;
* ``from_entry`` is tolerant: a key older code did not write gets its default;
* payloads hold names, counts, hashes, paths and fingerprints, never record values.

Every record also carries the entry's columns (``agreement``, ``flow``,
``logical_date``, ``recipient``, ``at``); a record read back keeps its ``entry``
(for ``seq`` and ``hash``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, ClassVar, Self

from transfers.ledger.chain import Entry


def _digest(payload: Mapping[str, Any]) -> str:
    """The short content hash in privacy and no-consent dedupe keys (as written since the first release)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stamp(moment: datetime | None) -> str | None:
    """A time as payloads hold it: ISO 8601 to the second (None stays None)."""
    return moment.isoformat(timespec="seconds") if moment is not None else None


def _when(text: Any) -> datetime | None:
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


# ---------------------------------------------------------------------- quality and privacy


@dataclass(frozen=True, kw_only=True)
class QualityResult(Record):
    """A flow run's data-quality outcome: ``QualityOutcome.summary()``, counts only.

    The summary's shape belongs to ``transfers.quality.outcome``; it is kept whole
    because the drift baseline and the trend read earlier runs as mappings.
    """

    KIND: ClassVar[str] = "quality"
    summary: Mapping[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int | None:
        rows = self.summary.get("rows")
        return rows if isinstance(rows, int) else None

    def to_payload(self) -> dict[str, Any]:
        return dict(self.summary)

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"summary": dict(payload)}


@dataclass(frozen=True, kw_only=True)
class PrivacyResult(Record):
    """What the privacy step excluded, overrode and sent (counts, never subjects)."""

    KIND: ClassVar[str] = "privacy"
    excluded: dict[str, int] = field(default_factory=dict)
    basis: str | None = None
    deceased: dict[str, Any] | None = None
    opt_outs_overridden: dict[str, int] | None = None
    unchecked_no_subject_id: int | None = None
    k: dict[str, Any] | None = None
    rows_screened: int = 0
    rows_sent: int = 0
    pseudonym_key_id: str | None = None

    _OPTIONAL: ClassVar[tuple[str, ...]] = ("deceased", "opt_outs_overridden", "unchecked_no_subject_id", "k")

    def dedupe_key(self) -> str:
        return f"privacy:{self.flow}:{_ds(self)}:{_digest(self.to_payload())}"

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"excluded": dict(self.excluded), "basis": self.basis}
        for name in self._OPTIONAL:  # written only when there is something to say
            if (value := getattr(self, name)) is not None:
                payload[name] = value
        return {**payload, "rows_screened": self.rows_screened, "rows_sent": self.rows_sent,
                "pseudonym_key_id": self.pseudonym_key_id}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"excluded": dict(payload.get("excluded") or {}), "basis": payload.get("basis"),
                **{name: payload.get(name) for name in cls._OPTIONAL},
                "rows_screened": payload.get("rows_screened", 0), "rows_sent": payload.get("rows_sent", 0),
                "pseudonym_key_id": payload.get("pseudonym_key_id")}


@dataclass(frozen=True, kw_only=True)
class SharedWithoutConsent(Record):
    """A share under a statutory basis instead of consent (protocol 3.1 and 5), for the IG report."""

    KIND: ClassVar[str] = "shared-without-consent"
    legal_basis: str | None = None
    ground: str | None = None
    justification: str | None = None
    override_opt_outs: bool = False
    rows: int = 0
    opt_outs_overridden: dict[str, int] = field(default_factory=dict)

    def dedupe_key(self) -> str:
        return f"no-consent:{self.flow}:{_ds(self)}:{_digest(self.to_payload())}"

    def to_payload(self) -> dict[str, Any]:
        return {"legal_basis": self.legal_basis, "ground": self.ground, "justification": self.justification,
                "override_opt_outs": self.override_opt_outs, "rows": self.rows,
                "opt_outs_overridden": dict(self.opt_outs_overridden)}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"legal_basis": payload.get("legal_basis"), "ground": payload.get("ground"),
                "justification": payload.get("justification"),
                "override_opt_outs": bool(payload.get("override_opt_outs")), "rows": int(payload.get("rows") or 0),
                "opt_outs_overridden": dict(payload.get("opt_outs_overridden") or {})}


@dataclass(frozen=True, kw_only=True)
class PseudonymKey(Record):
    """The pseudonymisation key in use for a linkage domain: first use, or a rotation."""

    KIND: ClassVar[str] = "pseudonym-key"
    domain: str
    key_id: str | None = None
    key_fingerprint: str | None = None
    event: str = "first-use"  # first-use | rotation
    previous: dict[str, Any] | None = None  # the identity() of the key before a rotation

    def identity(self) -> dict[str, Any]:
        """What makes it the same key: a different value in any is a rotation."""
        return {"domain": self.domain, "key_id": self.key_id, "key_fingerprint": self.key_fingerprint}

    def dedupe_key(self) -> str:
        return f"pseudonym-key:{self.agreement}:{self.domain}:{self.key_id}:{self.key_fingerprint}"

    def to_payload(self) -> dict[str, Any]:
        return {**self.identity(), "event": self.event, "previous": self.previous}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"domain": payload.get("domain", ""), "key_id": payload.get("key_id"),
                "key_fingerprint": payload.get("key_fingerprint"), "event": payload.get("event", "first-use"),
                "previous": payload.get("previous")}


# ---------------------------------------------------------------------- delivery


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
        return self.key_for(self.flow or "", _ds(self), self.recipient or "")

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


# ---------------------------------------------------------------------- subjects' rights


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


# ---------------------------------------------------------------------- retention


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
        return self.key_for(self.flow or "", _ds(self), self.recipient or "", self.name)

    def to_payload(self) -> dict[str, Any]:
        return {"place": self.place, "store": self.store, "path": self.path, "size": self.size,
                "sha256": self.sha256, "created": stamp(self.created), "due": stamp(self.due), "rule": self.rule}

    @classmethod
    def _fields(cls, payload: Mapping[str, Any], dedupe_key: str | None) -> dict[str, Any]:
        return {"place": payload.get("place", "archive"), "store": payload.get("store", "local"),
                "path": payload.get("path", ""), "size": payload.get("size"), "sha256": payload.get("sha256"),
                "created": _when(payload.get("created")), "due": _when(payload.get("due")),
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
    as_of: datetime | None = None  # the moment due dates were judged at (``purge --now``)

    def _common(self) -> dict[str, Any]:
        return {"place": self.place, "store": self.store, "path": self.path,
                "created": stamp(self.created), "due": stamp(self.due), "rule": self.rule,
                "as_of": stamp(self.as_of)}

    @classmethod
    def _common_fields(cls, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"place": payload.get("place", ""), "store": payload.get("store", "local"),
                "path": payload.get("path", ""), "created": _when(payload.get("created")),
                "due": _when(payload.get("due")), "rule": payload.get("rule", ""),
                "as_of": _when(payload.get("as_of"))}


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
                "sha256": payload.get("sha256"), "deleted_at": _when(payload.get("deleted_at")),
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
                "attempted_at": _when(payload.get("attempted_at"))}


#: Every kind written today, by its ``KIND``.
KINDS: dict[str, type[Record]] = {cls.KIND: cls for cls in (
    QualityResult, PrivacyResult, SharedWithoutConsent, PseudonymKey, RecipientKeyRefused, DeliveryIntent,
    Disclosure, Withdrawal, Notice, Archived, Purged, PurgeFailed)}


def record_of(entry: Entry) -> Record | None:
    """The record an entry holds, or None for a kind no code writes any more."""
    cls = KINDS.get(entry.kind)
    return cls.from_entry(entry) if cls is not None else None


def _ds(record: Record) -> str:
    return record.logical_date.isoformat() if record.logical_date else ""
