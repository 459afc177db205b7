"""Read the flow's source, through its resolved connection, into encrypted staging batches.

An S3 source's object is looked up once and read at that version; the version id,
ETag and size go in the ledger (an ``extract`` entry) once the batches are staged,
so a disclosure is traced to the exact bytes it was made from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict

from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class ExtractResult(TypedDict):
    rows: int
    batches: int
    columns: int
    version_id: NotRequired[str | None]  # an S3 source: the object version read
    etag: NotRequired[str]


def extract(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> ExtractResult:
    """Read the source into encrypted staging batches."""
    source = run.ref.flow.source
    conn = resolvers.connection(source.connection)
    if source.kind == "s3":
        return _extract_object(run, conn, ledger)
    from transfers.sources import extract_batches

    # Arrow tables straight into staging where the source gives them (PostgreSQL's COPY).
    batches = extract_batches(source, conn, config_dir=run.config.root, logical_date=run.logical_date)
    counts = run.staging.write_batches("extract", batches)
    log.info("extracted", **run._ctx(rows=counts["rows"], batches=counts["parts"]))
    return {"rows": counts["rows"], "batches": counts["parts"], "columns": len(counts["columns"])}


def _extract_object(run: FlowRun, conn: ConnInfo, ledger: Ledger) -> ExtractResult:
    from transfers.ledger.records import Extracted
    from transfers.s3source import locate, read_batches

    source = run.ref.flow.source
    s3, obj = locate(source, conn, logical_date=run.logical_date)
    counts = run.staging.write_batches("extract", read_batches(s3, obj, source.batch_rows))
    ledger.record(
        Extracted(
            agreement=run.ref.agreement.id,
            flow=run.ref.key,
            logical_date=run.logical_date,
            connection=obj.connection,
            bucket=obj.bucket,
            key=obj.key,
            version_id=obj.version_id,
            etag=obj.etag,
            size=obj.size,
            format=obj.format,
            rows=counts["rows"],
        )
    )
    log.info(
        "extracted",
        **run._ctx(
            rows=counts["rows"], batches=counts["parts"], bucket=obj.bucket, key=obj.key, version_id=obj.version_id
        ),
    )
    return {
        "rows": counts["rows"],
        "batches": counts["parts"],
        "columns": len(counts["columns"]),
        "version_id": obj.version_id,
        "etag": obj.etag,
    }
