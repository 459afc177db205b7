"""Drift: this run's row count and per-field null rates against the flow's recent runs.

The baseline is the ledger's ``quality`` entries for the flow (their payload is
:meth:`QualityOutcome.summary`: counts only), so no record is kept to compare
with. A sudden drop in rows (a broken join, a half-loaded source) or a field
that is suddenly empty far more often is a reliability failure even when every
record on its own looks fine.

Until the flow has ``min_history`` earlier runs there is nothing to compare
with: the check is then not judged and says "no history yet", which the
scorecard shows, rather than passing quietly.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from transfers.agreement import QualityPolicy
from transfers.ledger.records import QualityResult
from transfers.quality.checks import Check
from transfers.quality.outcome import CheckResult

if TYPE_CHECKING:
    from transfers.ledger import Ledger


def recent_history(ledger: Ledger, flow_key: str, policy: QualityPolicy) -> list[dict[str, Any]]:
    """The flow's last quality summaries from the ledger, enough for the drift baseline and the trend.

    Twice the baseline (at least 20): re-runs of a day are in the ledger too, and
    only the latest of each day counts.
    """
    keep = 2 * max(10, policy.history_runs)
    return [dict(r.summary) for r in ledger.latest_records(QualityResult, keep, flow=flow_key)]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def baseline_runs(history: Sequence[Mapping[str, Any]], logical_date: date, runs: int) -> list[Mapping[str, Any]]:
    """The last ``runs`` earlier runs with a row count, one per logical date (the latest entry wins).

    A re-run of this logical date is not history: it would compare the run with itself.
    """
    by_day: dict[str, Mapping[str, Any]] = {}
    for item in history:
        if not isinstance(item, Mapping) or _count(item.get("rows")) is None:
            continue
        day = str(item.get("logical_date"))
        if day == logical_date.isoformat():
            continue
        by_day.pop(day, None)
        by_day[day] = item
    return list(by_day.values())[-runs:]


def _no_history(check: Check, found: int, needed: int) -> CheckResult:
    note = f"no history yet: {found} earlier run(s) of this flow, {needed} needed before drift is judged"
    return CheckResult(check.id, check.dimension, check.description, check.field, "extract", None, None, None, note)


def judge_drift(
    check: Check,
    policy: QualityPolicy,
    logical_date: date,
    *,
    rows: int,
    nulls: Mapping[str, int],
    history: Sequence[Mapping[str, Any]],
) -> CheckResult:
    """Judge one drift check (``reliability.row_count`` or ``reliability.null_rate.<field>``)."""
    earlier = baseline_runs(history, logical_date, policy.history_runs)
    kind = check.id.split(".")[1]
    if kind == "row_count":
        counts = [_count(item.get("rows")) for item in earlier]
        usable = [c for c in counts if c is not None]
        if len(usable) < policy.min_history:
            return _no_history(check, len(usable), policy.min_history)
        median = statistics.median(usable)
        limit = (policy.row_count_drift or 0) * median
        ok = abs(rows - median) <= limit
        note = None if ok else (
            f"{rows} rows against a median of {median:g} over the last {len(usable)} runs "
            f"(allowed {median - limit:g} to {median + limit:g})"
        )
        return CheckResult(check.id, check.dimension, check.description, None, "extract", None, None, ok, note)
    # null_rate.<field>
    name = check.field or ""
    shares = []
    for item in earlier:
        raw_nulls = item.get("nulls")
        item_nulls: Mapping[str, Any] = raw_nulls if isinstance(raw_nulls, Mapping) else {}
        missing, total = _count(item_nulls.get(name)), _count(item.get("rows"))
        if missing is not None and total:
            shares.append(missing / total)
    if len(shares) < policy.min_history:
        return _no_history(check, len(shares), policy.min_history)
    if rows == 0:
        note = "the extract is empty: no null rate to compare"
        return CheckResult(check.id, check.dimension, check.description, name, "extract", None, None, None, note)
    before = statistics.fmean(shares)
    now = nulls.get(name, 0) / rows
    ok = now <= before + (policy.null_rate_drift or 0)
    note = None if ok else (
        f"{now:.1%} of records miss {name}, against {before:.1%} on average over the last {len(shares)} runs"
    )
    return CheckResult(check.id, check.dimension, check.description, name, "extract", None, None, ok, note)
