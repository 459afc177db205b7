"""The scorecard as plain data (the JSON report; the HTML is rendered from it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality.outcome import QualityOutcome


def report_document(outcome: QualityOutcome, flow: Flow) -> dict[str, Any]:
    """The scorecard as plain data (the JSON report; the HTML is rendered from it). No record values."""
    prefixes = tuple(f"{c.id}: " for c in outcome.checks)
    return {
        "report": "data quality",
        "format": 1,
        "agreement": outcome.agreement_id,
        "flow": flow.id,
        "flow_name": flow.name,
        "from": flow.from_,
        "to": [r.partner for r in flow.to],
        "logical_date": outcome.logical_date.isoformat() if outcome.logical_date else None,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": outcome.rows,
        "batches": outcome.batches,
        "blocked": list(outcome.blocked),
        "quarantined": len(outcome.quarantined_keys),
        "held_back_rows": outcome.held_back_rows,
        "dry_run": outcome.dry_run,
        "dimensions": {
            d: {
                **outcome.dimensions[d].counts(),
                "rows": outcome.rows,
                "notes": list(outcome.dimensions[d].notes),
                # the notes not already shown beside their check
                "general_notes": [n for n in outcome.dimensions[d].notes if not n.startswith(prefixes)],
            }
            for d in DIMENSIONS
        },
        "checks": [r.to_dict() for r in outcome.checks],
        "rectification": {
            "records": outcome.records_to_fix,
            "csv": outcome.rectification_csv.name,
            "html": outcome.rectification_csv.with_suffix(".html").name,
        }
        if outcome.rectification_csv is not None
        else None,
    }
