"""Results: per check, per characteristic and for the run (counts only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from transfers.agreement import DIMENSIONS

Outcome = Literal["pass", "warn", "quarantine", "block"]


@dataclass
class CheckResult:
    """How one check fared over the whole extract (counts only).

    ``judged`` and ``failing`` are None for extract checks; ``success`` is None
    when the check could not be judged (the note says why).
    """

    id: str
    dimension: str
    description: str
    field: str | None
    scope: str
    judged: int | None
    failing: int | None
    success: bool | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DimensionResult:
    """One characteristic's score. ``notes`` hold field and column names, never record values."""

    dimension: str
    checks: int
    passed: int
    failed: int
    failing_rows: int
    rows: int
    policy: str
    outcome: Outcome
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "passed": self.passed,
            "failed": self.failed,
            "failing_rows": self.failing_rows,
            "policy": self.policy,
            "outcome": self.outcome,
        }


@dataclass
class QualityOutcome:
    """What :func:`check_quality` found. Only ``quarantined_keys`` names records; keep it in memory."""

    rows: int
    dimensions: dict[str, DimensionResult]
    blocked: list[str]
    quarantined_keys: set[tuple[str, ...]]
    report_html: Path | None
    report_json: Path | None
    agreement_id: str = ""
    flow_id: str = ""
    logical_date: date | None = None
    batches: int = 0
    checks: list[CheckResult] = field(default_factory=list)
    nulls: dict[str, int] = field(default_factory=dict)  # missing values per agreed field, for drift
    rectification_csv: Path | None = None
    rectification_html: Path | None = None
    records_to_fix: int = 0
    # Rows, not keys: every row of a quarantined key is held back, so both copies of a duplicated key.
    held_back_rows: int = 0
    dry_run: bool = False

    def summary(self) -> dict[str, Any]:
        """Small and JSON-able, counts only: safe for the ledger, logs and XCom."""
        return {
            "agreement": self.agreement_id,
            "flow": self.flow_id,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "rows": self.rows,
            "batches": self.batches,
            "blocked": list(self.blocked),
            "quarantined": len(self.quarantined_keys),
            "held_back_rows": self.held_back_rows,
            "dimensions": {d: self.dimensions[d].counts() for d in DIMENSIONS},
            "nulls": dict(self.nulls),
            "records_to_fix": self.records_to_fix,
        }
