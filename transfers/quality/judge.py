"""Judge the counts the checks gathered: each check, each characteristic, the scorecard.

Shared by the one-pass :func:`~transfers.quality.run.check_quality` and the mapped parts' seal
(:mod:`transfers.quality.mapped`), so the scorecard is decided by one piece of code either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality.checks import Check
from transfers.quality.extract_checks import _judge_extract
from transfers.quality.history import judge_drift
from transfers.quality.outcome import CheckResult, DimensionResult, Outcome, QualityOutcome
from transfers.quality.rectify import HTML_ROWS, by_record, read_notice
from transfers.quality.relevance import ColumnChecks, is_column_check
from transfers.quality.report import report_document
from transfers.quality.rules import _KEY_COLUMN


@dataclass
class _Tally:
    judged: int = 0
    failing: int = 0
    errors: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    keys: set[tuple[str, ...]] = field(default_factory=set)


@dataclass
class _Copies:
    """How many rows carry each record key, kept only where that is not one: duplicated or incomplete keys.

    The pipeline holds back every row whose key is quarantined, so the rows held
    back are counted from these, as rendered there (``astype(str)``).
    """

    repeats: Counter[tuple[str, ...]] = field(default_factory=Counter)  # later copies of a complete key
    incomplete: Counter[tuple[str, ...]] = field(default_factory=Counter)  # keys with a missing part

    def note(self, frame: pd.DataFrame, keys: Callable[[], pd.DataFrame]) -> None:
        flags = frame[_KEY_COLUMN]
        missing = flags.isna().to_numpy()
        odd = np.flatnonzero(missing | ~flags.fillna(True).to_numpy(dtype=bool))
        if not odd.size:
            return
        rendered = keys().iloc[odd].astype(str).itertuples(index=False, name=None)
        for i, key in zip(odd.tolist(), rendered, strict=True):
            (self.incomplete if missing[i] else self.repeats)[key] += 1

    def rows(self, keys: set[tuple[str, ...]]) -> int:
        # A complete key's rows are its first copy plus its repeats; an incomplete one's are counted directly.
        return sum(
            self.incomplete.get(k, 0) + (1 + self.repeats.get(k, 0) if k in self.repeats or k not in self.incomplete
                                         else 0)
            for k in keys
        )


def _mostly_met(judged: int, failing: int, mostly: float) -> bool:
    # Same rule as GX, applied to the totals of every batch; nothing judged passes.
    return judged == 0 or (judged - failing) / judged >= mostly


def judge(
    flow: Flow,
    checks: Sequence[Check],
    tallies: dict[str, _Tally],
    copies: _Copies,
    columns: ColumnChecks,
    *,
    rows: int,
    batches: int,
    nulls: dict[str, int],
    newest: dict[str, pd.Timestamp | None],
    recent: bool,
    rectification: Path | None,
    records_to_fix: int,
    agreement_id: str,
    logical_date: date,
    report_dir: Path | None,
    history: Sequence[dict],
    dry_run: bool,
) -> QualityOutcome:
    """Each check's result over the whole extract, each characteristic's outcome, and the scorecard written."""
    results: list[CheckResult] = []
    for ch in checks:
        if ch.scope == "rows":
            t = tallies[ch.id]
            ok = t.errors == 0 and _mostly_met(t.judged, t.failing, ch.mostly)
            note = f"could not be evaluated on {t.errors} batch(es)" if t.errors else None
            results.append(
                CheckResult(ch.id, ch.dimension, ch.description, ch.field, "rows", t.judged, t.failing, ok, note)
            )
        elif ch.id.startswith(("reliability.row_count", "reliability.null_rate.")):
            results.append(
                judge_drift(ch, flow.quality, logical_date, rows=rows, nulls=nulls, history=history)
            )
        elif is_column_check(ch):
            results.append(columns.judge(ch, batches))
        else:
            results.append(_judge_extract(ch, flow, logical_date, rows=rows, newest=newest))

    dimensions: dict[str, DimensionResult] = {}
    quarantined: set[tuple[str, ...]] = set()
    for d in DIMENSIONS:
        mine = [r for r in results if r.dimension == d]
        failed = [r for r in mine if r.success is False]
        # A record failing two checks of a characteristic counts once.
        flagged = [part for r in failed if r.scope == "rows" for part in tallies[r.id].rows]
        n_failing = int(np.unique(np.concatenate(flagged)).size) if flagged else 0
        policy = flow.quality.policy(d)
        notes = [f"{r.id}: {r.note}" for r in mine if r.note]
        if not mine:
            notes.append("the agreement sets no check of this characteristic")
        if d == "timeliness" and flow.quality.max_age and not recent:
            notes.append("quality.max_age is set but no field has a 'recent' check, so the extract's age is not judged")
        verdict: Outcome = "pass"
        if failed:
            verdict = policy
            whole = [r for r in failed if r.scope == "extract" or tallies[r.id].errors]
            if policy == "quarantine" and whole:
                # Quarantine holds back failing records; a failure of the extract as
                # a whole names no record to hold back, so nothing may be sent.
                verdict = "block"
                notes.append("a failure of the whole extract cannot be quarantined record by record: blocked")
            if verdict == "quarantine":
                for r in failed:
                    quarantined |= tallies[r.id].keys
        dimensions[d] = DimensionResult(
            d, len(mine), sum(r.success is True for r in mine), len(failed), n_failing, rows, policy, verdict, notes
        )

    outcome = QualityOutcome(
        rows=rows,
        dimensions=dimensions,
        blocked=[d for d in DIMENSIONS if dimensions[d].outcome == "block"],
        quarantined_keys=quarantined,
        held_back_rows=copies.rows(quarantined),
        report_html=None,
        report_json=None,
        agreement_id=agreement_id,
        flow_id=flow.id,
        logical_date=logical_date,
        batches=batches,
        checks=results,
        nulls=dict(nulls),
        rectification_csv=rectification,
        records_to_fix=records_to_fix,
        dry_run=dry_run,
    )
    if report_dir is not None:
        from transfers.reports import write_quality_report, write_rectification_html

        outcome.report_html, outcome.report_json = write_quality_report(
            report_document(outcome, flow), Path(report_dir), history=history
        )
        if rectification is not None:
            lines = read_notice(rectification, HTML_ROWS + 1)
            outcome.rectification_html = write_rectification_html(
                outcome, flow, Path(report_dir), lines[:HTML_ROWS], by_record(lines[:HTML_ROWS]), len(lines) > HTML_ROWS
            )
    return outcome
