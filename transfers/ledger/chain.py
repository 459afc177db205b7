"""The hash chain, pure: what an entry is, how it is serialised and hashed.

No database here, so the chain's rules can be tested (and tampering reproduced)
without one. ``hash = sha256(prev_hash + canonical JSON of the entry)``, from
``GENESIS_HASH``; the canonical JSON is also how payloads are stored, so what
is hashed is exactly what is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from transfers.errors import LedgerTampered

GENESIS_HASH = "0" * 64
#: Payloads are summaries; a larger one almost certainly carries data it must not.
MAX_PAYLOAD_BYTES = 256 * 1024
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as stored.

    Attributes:
        seq: Position in the chain, from 1, without gaps.
        at: When it was recorded (timezone-aware, UTC).
        kind: ``disclosure``, ``quality``, ``purge``...
        agreement: Agreement id.
        flow: Flow key, if the entry concerns one flow.
        logical_date: The flow run's logical date, if any.
        recipient: Receiving partner, if any.
        dedupe_key: Unique key that makes a re-run record nothing new.
        payload: Small JSON object: names, counts, hashes, paths, fingerprints.
        prev_hash: ``hash`` of the entry before (64 zeros for the first).
        hash: sha256 over ``prev_hash`` and the canonical JSON of the fields above.
    """

    seq: int
    at: datetime
    kind: str
    agreement: str
    flow: str | None
    logical_date: date | None
    recipient: str | None
    dedupe_key: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def columns(self) -> dict[str, Any]:
        """Every column as stored, payload and hashes too: for an export (``transfers ledger show --json``)
        that shows an entry whole, never for reading a payload's keys (the records do that)."""
        return asdict(self)

    def expected_hash(self) -> str:
        """The hash these contents must have; differs from ``hash`` if the row was edited."""
        return chain_hash(self.prev_hash, self._content())

    def _content(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "kind": self.kind,
            "agreement": self.agreement,
            "flow": self.flow,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "recipient": self.recipient,
            "dedupe_key": self.dedupe_key,
            "payload": self.payload,
        }


@dataclass
class VerifyReport:
    """What ``Ledger.verify`` found.

    Attributes:
        checked: How many entries were read.
        problems: One line per problem, each naming the entry seq or the anchor.
        head: The last entry read, if any.
    """

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    head: Entry | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        """Raise ``LedgerTampered`` listing the problems, if there are any."""
        if self.problems:
            raise LedgerTampered("ledger does not verify:\n" + "\n".join(f"  - {p}" for p in self.problems))


def canonical_json(value: Any) -> str:
    """The one serialisation hashes are computed over (and payloads stored as)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("ascii")).hexdigest()


def iso(moment: datetime) -> str:
    """``moment`` as hashed: UTC, microseconds, so both databases hash the same text."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"ledger: {name}={moment.isoformat()} has no timezone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC)


def check_kind(kind: str) -> None:
    if not _KIND.match(kind):
        raise ValueError(f"ledger entry kind {kind!r}: use lower-case letters, digits, '-' or '_'")


def normalise_payload(kind: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    """``payload`` as it will read back: checked to be plain JSON of bounded size, then round-tripped.

    The round trip makes the entry an append returns equal what a later read
    returns (tuples become lists, keys strings), so both hash the same.
    """
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValueError(f"ledger entry {kind!r}: payload must be a dict, not {type(payload).__name__}")
    try:
        text = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ledger entry {kind!r}: payload is not plain JSON ({exc})") from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"ledger entry {kind!r}: payload is {len(text)} bytes (limit {MAX_PAYLOAD_BYTES}); "
                         f"record counts and hashes, not data")
    return json.loads(text)
