"""The last step, run whatever happened before: the run's working files go; the sealed outbox stays.

It also lets go of the run's "running" marker (a purge held off this (flow, date)
meanwhile), and once every recipient has its disclosure, the subjects of prepare
attempts no disclosure points at (a retry's). It never hides the run's own outcome:
that housekeeping only warns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class CleanupResult(TypedDict):
    cleared: str
    prepared_subject_rows_removed: int | None


def cleanup(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> CleanupResult:
    """Remove the run's working files; the encrypted outbox stays for retention."""
    from transfers.retention.running import clear_running
    from transfers.workstore import drop_staging

    run.staging.clear()
    try:
        run.run_dir.rmdir()
    except OSError:
        pass
    clear_running(run.settings.layout, run.ref.agreement.id, run.ref.flow.id, run.ds)
    # An S3 work store: every staging object goes, also one a task it never saw left (the outbox stays).
    drop_staging(run, resolvers.connection)
    removed = _forget_prepared_subjects(run, ledger)
    log.info("working files removed", **run._ctx(folder=str(run.run_dir), prepared_subject_rows_removed=removed))
    return {"cleared": str(run.run_dir), "prepared_subject_rows_removed": removed}


def _forget_prepared_subjects(run: FlowRun, ledger: Ledger) -> int | None:
    """Once every recipient has this date's disclosure, prepared sets no disclosure points at can go."""
    from transfers.privacy.subjects import SubjectIndex

    try:
        if any(ledger.find(run.disclosure_key(r)) is None for r in run.ref.flow.to):
            return None  # a retry still needs them to record who the sealed outbox holds
        index = SubjectIndex.for_settings(run.settings)
        try:
            return index.forget_prepared(run.ref.key, run.logical_date)
        finally:
            index.close()
    except Exception as exc:  # housekeeping must not hide the run's own outcome
        log.warning("prepared subject rows kept", **run._ctx(error=type(exc).__name__))
        return None
