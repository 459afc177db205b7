"""Read the flow's source, through its resolved connection, into encrypted staging batches."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class ExtractResult(TypedDict):
    rows: int
    batches: int
    columns: int


def extract(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> ExtractResult:
    """Read the source into encrypted staging batches."""
    from transfers.sources import extract_batches

    conn = resolvers.connection(run.ref.flow.source.connection)
    # Arrow tables straight into staging where the source gives them (PostgreSQL's COPY).
    batches = extract_batches(run.ref.flow.source, conn, config_dir=run.config.root, logical_date=run.logical_date)
    counts = run.staging.write_batches("extract", batches)
    log.info("extracted", **run._ctx(rows=counts["rows"], batches=counts["parts"]))
    return {"rows": counts["rows"], "batches": counts["parts"], "columns": len(counts["columns"])}
