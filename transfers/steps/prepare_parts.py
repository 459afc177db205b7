"""The prepare step as the DAG runs it: a plan, one mapped task per range of the extract, and a seal.

The ranges are the quality step's (``TRANSFERS_PART_ROWS`` rows of whole extract staging parts). Each
``prepare_part`` makes its range safe to send exactly as :func:`~transfers.steps.prepare.prepare` does
each batch (held back, screened, minimised, pseudonymised, generalised), writes the prepared staging part
of each extract staging part it read (the same index, so the prepared stage is laid out as a one-pass run
lays it out), stages its subjects in the register under its own reference, and keeps its counts in the
run's encrypted staging (``prepare-<part>``; a retry overwrites them). ``prepare_seal`` then: checks every
planned part's results and files are there, writes the prepared stage's ``columns.json`` (rows,
``part_rows``), puts the parts' subjects under one reference, sums the exclusions by reason and judges k
over every part's quasi-identifier groups, and records the run's privacy entries once. Only small values
go back to Airflow.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from transfers.errors import StateError
from transfers.logs import get_logger
from transfers.steps.quality_parts import PlannedRange, _ranges

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger
    from transfers.privacy.step import Screening
    from transfers.steps.prepare import PrepareResult

log = get_logger(__name__)

__all__ = ["plan_prepare", "prepare_part", "seal_prepare"]

_PREFIX = "prepare-"
_COUNTS = ("deceased_sent", "unchecked", "rows_sent", "rows_screened")
_TOTALS = ("rows_in", "rows_out", "held_back")


def plan_prepare(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> list[PlannedRange]:
    """The ranges of extract rows to prepare, one mapped task each; the prepared stage and old results removed."""
    run.staging.clear_stage("prepared")
    for old in run.staging.run_dir.glob(f"{_PREFIX}part-*.json.fernet"):
        old.unlink()
    return _ranges(run)


def prepare_part(run: FlowRun, resolvers: Resolvers, ledger: Ledger, part: PlannedRange) -> dict[str, Any]:
    """Prepare one range: its prepared staging parts written, its subjects staged, its counts kept for the seal.

    Raises:
        StateError: the range is not one the extract stage names now (extracted again since the plan).
    """
    from transfers.steps.prepare import prepared_batches, screening_for

    if part not in _ranges(run):
        raise StateError(f"{run.staging.run_dir / 'extract'}: prepare part {part['name']!r} is not one the extract "
                         f"stage names now; run prepare again")
    totals: dict[str, Any] = dict.fromkeys(_TOTALS, 0)
    screening, key = screening_for(run, resolvers)
    try:
        source = run.staging.read_range("extract", part["first"], part["stop"])
        files = [run.staging.write_part("prepared", part["first"] + i, safe)
                 for i, safe in enumerate(prepared_batches(run, screening, key, source, totals))]
        if screening.staged is not None:
            screening.staged.flush()  # under this attempt's own reference: the seal adopts only the one it is told
        state = _state(screening)
    finally:
        screening.close()
    run.staging.write_json(_PREFIX + part["name"], {"part": dict(part), "files": files, **totals, **state})
    log.info("prepare part done", **run._ctx(part=part["name"], rows_in=totals["rows_in"], sent=totals["rows_out"]))
    return {"index": part["index"], "name": part["name"], **totals}


def seal_prepare(run: FlowRun, resolvers: Resolvers, ledger: Ledger, planned: Sequence[PlannedRange],
                 made: Sequence[dict[str, Any]]) -> PrepareResult:
    """Every part there, the prepared stage closed, the privacy entries recorded once for the whole run.

    Raises:
        StateError: a planned part has no results or files (named), or results for another range.
        DisclosureRiskBlocked: the flow blocks on k and the smallest group over every part is below it.
    """
    from transfers.privacy.subjects import prepared_prefix
    from transfers.steps.prepare import log_summary, screening_for

    where = run.staging.run_dir
    if not planned:
        raise StateError(f"{where}: no prepare parts were planned; run prepare again")
    states = []
    for part in sorted(planned, key=lambda p: p["index"]):
        state = run.staging.read_json(_PREFIX + part["name"])
        if state is None:
            raise StateError(f"{where}: prepare part {part['name']!r} (rows {part['start']:,}+{part['rows']:,}) "
                             f"has no results; run prepare_part for it again")
        if state["part"] != dict(part):
            raise StateError(f"{where}: prepare part {part['name']!r} holds results for another range; "
                             f"run prepare again")
        states.append(state)
    run.staging.finish_stage("prepared", run.ref.flow.shared_fields, [n for s in states for n in s["files"]])
    totals: dict[str, Any] = {name: sum(s[name] for s in states) for name in _TOTALS}
    screening, _key = screening_for(run, resolvers)
    try:
        _add_states(screening, states)
        refs = [s["ref"] for s in states if s["ref"]]
        if screening.index is not None:
            # The same reference for the same parts: a retried seal finds them adopted already.
            screening.ref = prepared_prefix(run.ref.key, run.ds) + hashlib.sha256("\n".join(refs).encode()).hexdigest()[:32]
            screening.index.adopt_prepared(refs, screening.ref)
        totals.update(screening.finish(ledger))
    finally:
        screening.close()
    log_summary(run, totals)
    return cast("PrepareResult", totals)


def _state(screening: Screening) -> dict[str, Any]:
    """What the seal needs of one part's screening: counts, groups, subjects met again (JSON-able)."""
    groups = screening.groups
    return {
        "excluded": dict(screening.excluded), "overridden": dict(screening.overridden),
        **{name: getattr(screening, name) for name in _COUNTS},
        "groups": [[[_plain(v) for v in k], n] for k, n in groups.counts.items()] if groups is not None else [],
        "group_rows": groups.rows if groups is not None else 0,
        "notified_seen": sorted(screening.notified_seen),
        "ref": screening.ref if screening.staged is not None else None,
    }


def _add_states(screening: Screening, states: Sequence[dict[str, Any]]) -> None:
    """Every part's counts into the seal's screening, as if it had screened every batch itself."""
    for state in states:
        screening.excluded.update(Counter(state["excluded"]))
        screening.overridden.update(Counter(state["overridden"]))
        for name in _COUNTS:
            setattr(screening, name, getattr(screening, name) + state[name])
        screening.notified_seen.update(state["notified_seen"])
        if screening.groups is not None:
            screening.groups.counts.update({tuple(k): n for k, n in state["groups"]})
            screening.groups.rows += state["group_rows"]


def _plain(value: Any) -> Any:
    """A JSON value for a numpy scalar (a generalised year may be one); others as they are."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value
