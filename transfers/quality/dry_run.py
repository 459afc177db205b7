"""A dry run for data engineers: extract and check quality, send nothing, record nothing.

The extract goes to its own encrypted staging directory (``<run dir>.check``),
so a dry run never touches the working files of a real run of the same day,
and is removed afterwards whatever happens. The scorecard and rectification
notice go to ``reports/<agreement>/<flow>/dry-run/`` (under the same retention
as the real reports) so a real run's reports for that day are not replaced.
No ledger entry is written: a dry run is not a run, and must not become part
of the history that drift is judged against.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from transfers.agreement import Config, FlowRef
from transfers.connections import ConnInfo
from transfers.quality.outcome import QualityOutcome
from transfers.settings import Settings
from transfers.staging import Staging, new_staging_key


def reports_dir(settings: Settings, ref: FlowRef) -> Path:
    return settings.layout.reports_dir(ref.agreement.id, ref.flow.id)


def expectations_dir(config: Config) -> Path:
    return config.root.parent / "expectations"


def dry_run(
    settings: Settings,
    config: Config,
    ref: FlowRef,
    logical_date: date,
    connection: Callable[[str], ConnInfo],
) -> QualityOutcome:
    """Extract ``ref`` for ``logical_date`` and check its quality; the outcome's reports are under ``dry-run/``."""
    from transfers.quality.history import recent_history
    from transfers.quality.run import check_quality
    from transfers.sources import extract

    run_dir = settings.layout.check_dir(ref.agreement.id, ref.flow.id, logical_date)
    staging = Staging(run_dir, new_staging_key())
    history: list[dict] = []
    try:
        with settings.open_ledger() as ledger:
            history = recent_history(ledger, ref.key, ref.flow.quality)
        batches = extract(ref.flow.source, connection(ref.flow.source.connection), config_dir=config.root,
                          logical_date=logical_date)
        staging.write_batches("extract", batches)
        return check_quality(
            staging.read_batches("extract"),
            ref.flow,
            agreement_id=ref.agreement.id,
            logical_date=logical_date,
            report_dir=settings.layout.dry_run_reports_dir(ref.agreement.id, ref.flow.id),
            history=history,
            expectations_dir=expectations_dir(config),
            dry_run=True,
            work_dir=run_dir,
        )
    finally:
        staging.clear()
        try:
            run_dir.rmdir()
        except OSError:
            pass
