"""The quality step as the DAG runs it: a plan, one mapped task per range of the extract, and a seal.

``plan_quality`` groups the extract's staging parts into ranges of about ``part_rows`` rows (setting
``TRANSFERS_PART_ROWS``); ``quality_part`` checks one range and keeps its counts (and the record keys of its
failing rows) in the run's encrypted staging as ``quality-<part>``, overwriting what an earlier attempt of
the same part left; ``quality_seal`` judges uniqueness across every part, sums the parts, writes the one
scorecard, notice and quarantine, records one ``QualityResult`` and blocks the run if the policy says so,
as :func:`~transfers.steps.quality.quality` (what ``transfers run`` calls) does in one pass. Only small
values (indexes, names, counts) go back to Airflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from transfers.errors import StateError
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger
    from transfers.steps.quality import QualityResult

log = get_logger(__name__)

__all__ = ["PlannedRange", "plan_quality", "quality_part", "seal_quality"]

_PREFIX = "quality-"


class PlannedRange(TypedDict):
    """One mapped part: staging parts ``first`` to ``stop`` (not included), extract rows ``start`` on."""

    index: int
    name: str
    first: int
    stop: int
    start: int
    rows: int


def _ranges(run: FlowRun) -> list[PlannedRange]:
    from transfers.quality.mapped import plan_ranges

    counts = run.staging.part_rows("extract")
    if counts is None:  # a stage written before part_rows were recorded: one range of it all
        return [PlannedRange(index=0, name="part-00000", first=0, stop=len(run.staging._parts("extract")), start=0,
                             rows=run.staging.rows("extract"))]
    return [PlannedRange(index=i, name=f"part-{i:05d}", first=first, stop=stop, start=start, rows=rows)
            for i, (first, stop, start, rows) in enumerate(plan_ranges(counts, run.settings.part_rows))]


def plan_quality(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> list[PlannedRange]:
    """The ranges of extract rows to check, one mapped task each; an earlier attempt's part results are removed."""
    planned = _ranges(run)
    for old in run.staging.run_dir.glob(f"{_PREFIX}part-*.json.fernet"):
        old.unlink()  # the seal takes only what this plan's parts write
    log.info("quality planned", **run._ctx(parts=len(planned), rows=sum(p["rows"] for p in planned)))
    return planned


def quality_part(run: FlowRun, resolvers: Resolvers, ledger: Ledger, part: PlannedRange) -> dict[str, Any]:
    """Check one range of the extract (every row check but uniqueness, which the seal judges across parts).

    Raises:
        StateError: the range is not one the extract stage names now (extracted again since the plan).
    """
    from transfers.quality.mapped import check_range

    if part not in _ranges(run):
        raise StateError(f"{run.staging.run_dir / 'extract'}: quality part {part['name']!r} (rows {part['start']:,}"
                         f"+{part['rows']:,}) is not one the extract stage names now; run quality again")
    state = check_range(run.staging.read_range("extract", part["first"], part["stop"]), run.ref.flow,
                        agreement_id=run.ref.agreement.id, logical_date=run.logical_date,
                        expectations_dir=run.config.root.parent / "expectations", start=part["start"])
    state["part"] = dict(part)
    run.staging.write_json(_PREFIX + part["name"], state)  # a retry of this part overwrites it: counted once
    failing = sum(t["failing"] for t in state["tallies"].values())
    log.info("quality part checked", **run._ctx(part=part["name"], rows=state["rows"], failing=failing))
    return {"index": part["index"], "name": part["name"], "rows": state["rows"], "failing": failing}


def seal_quality(run: FlowRun, resolvers: Resolvers, ledger: Ledger, planned: Sequence[PlannedRange],
                 made: Sequence[dict[str, Any]]) -> QualityResult:
    """Uniqueness across every part, the parts' counts summed: one scorecard, quarantine and ledger entry.

    Raises:
        StateError: a planned part has no results (its task did not run to the end), or results for
            another range than planned, named; nothing is judged or recorded.
        QualityBlocked: a ``block`` characteristic failed (after the report is written).
    """
    from transfers.quality.history import recent_history
    from transfers.quality.mapped import seal_ranges
    from transfers.steps.quality import finish_quality

    where = run.staging.run_dir
    if not planned:
        raise StateError(f"{where}: no quality parts were planned; run quality again")
    states = []
    for part in sorted(planned, key=lambda p: p["index"]):
        state = run.staging.read_json(_PREFIX + part["name"])
        if state is None:
            raise StateError(f"{where}: quality part {part['name']!r} (rows {part['start']:,}+{part['rows']:,}) "
                             f"has no results; run quality_part for it again")
        if state.get("part") != dict(part):
            raise StateError(f"{where}: quality part {part['name']!r} holds results for another range than "
                             f"planned; run quality again")
        states.append(state)
    try:
        outcome = seal_ranges(states, run.staging.read_batches("extract"), run.ref.flow,
                              agreement_id=run.ref.agreement.id, logical_date=run.logical_date,
                              report_dir=run.reports_dir,
                              history=recent_history(ledger, run.ref.key, run.ref.flow.quality),
                              expectations_dir=run.config.root.parent / "expectations", work_dir=where)
    except ValueError as exc:  # the extract changed under the parts
        raise StateError(f"{where}: quality parts do not add up to the extract ({exc}); run quality again") from None
    return finish_quality(run, ledger, outcome)
