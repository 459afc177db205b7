"""Records of a run's checking steps: data quality, privacy screening, shares without consent, the pseudonym key."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from transfers.ledger.records.base import Record, content_digest, ds_of


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
        return f"privacy:{self.flow}:{ds_of(self)}:{content_digest(self.to_payload())}"

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
        return f"no-consent:{self.flow}:{ds_of(self)}:{content_digest(self.to_payload())}"

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
