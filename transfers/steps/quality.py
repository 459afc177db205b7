"""Judge the extract on the six data quality characteristics and apply the flow's policy.

The data owner's report is written first, whatever the outcome; a blocking failure
then stops the run (``QualityBlocked``) before anything is prepared. Quarantined
record keys go to staging for the prepare step to hold back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, TypedDict

from transfers.errors import QualityBlocked
from transfers.ledger.records import QualityResult as QualityRecord
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger
    from transfers.quality.outcome import QualityOutcome

log = get_logger(__name__)


class QualityResult(TypedDict):
    rows: int
    quarantined: int
    held_back_rows: int
    report: str | None
    rectification: str | None
    records_to_fix: int


def quality(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> QualityResult:
    """Check the six characteristics, write the data owner's report, apply the policy."""
    from transfers.quality import check_quality
    from transfers.quality.history import recent_history

    history = recent_history(ledger, run.ref.key, run.ref.flow.quality)
    outcome = check_quality(
        run.staging.read_batches("extract"),
        run.ref.flow,
        agreement_id=run.ref.agreement.id,
        logical_date=run.logical_date,
        report_dir=run.reports_dir,
        history=history,
        expectations_dir=run.config.root.parent / "expectations",
        work_dir=run.staging.run_dir,
    )
    return finish_quality(run, ledger, outcome)


def finish_quality(run: FlowRun, ledger: Ledger, outcome: QualityOutcome) -> QualityResult:
    """Record the outcome once in the ledger, stage the quarantine, log it, and stop the run if it is blocked."""
    summary = outcome.summary()
    ledger.record(QualityRecord(agreement=run.ref.agreement.id, flow=run.ref.key, logical_date=run.logical_date,
                                summary=summary))
    run.staging.write_json("quarantine", sorted(list(k) for k in outcome.quarantined_keys))
    _log_summary(run, outcome)
    if outcome.blocked:
        details = ", ".join(
            f"{d} ({outcome.dimensions[d].failing_rows} of {outcome.rows} rows)" for d in outcome.blocked
        )
        raise QualityBlocked(
            f"flow {run.ref.key} on {run.ds}: blocked by data quality: {details}; nothing was sent. "
            f"The data owner's report is {outcome.report_html}",
            report=str(outcome.report_html) if outcome.report_html else None,
        )
    return {
        "rows": outcome.rows,
        "quarantined": len(outcome.quarantined_keys),
        "held_back_rows": outcome.held_back_rows,
        "report": str(outcome.report_html) if outcome.report_html else None,
        "rectification": str(outcome.rectification_html) if outcome.rectification_html else None,
        "records_to_fix": outcome.records_to_fix,
    }


def _log_summary(run: FlowRun, outcome: QualityOutcome) -> None:
    """The stage's one line: a block is the run's failure (error); rows held back, or failures the flow
    only warns about, a warning; a clean pass info."""
    # By failed checks, not rows: relevance fails on columns, with no failing row.
    failing = sorted(d for d, result in outcome.dimensions.items() if result.failed)
    verdict = ("blocked" if outcome.blocked else "held back" if outcome.held_back_rows
               else "warned" if failing else "passed")
    level = logging.ERROR if outcome.blocked else logging.WARNING if outcome.held_back_rows or failing else logging.INFO
    log.log(level, "quality checked", **run._ctx(
        outcome=verdict, rows=outcome.rows, passed=outcome.rows - outcome.held_back_rows,
        held_back=outcome.held_back_rows, failing=failing, blocked=list(outcome.blocked)))
