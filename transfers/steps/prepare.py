"""Make the rows that may be sent: hold back, exclude, minimise, pseudonymise, generalise.

Quarantined rows (the quality step's keys) are held back; :class:`Screening` removes
who may not be sent (consent, opt-outs, deceased) and records the run's privacy
entries; the field transforms keep only the agreed fields. The keys come from the
agreement's secret through ``resolvers``, and never leave this step.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict, cast

from transfers.logs import get_logger

if TYPE_CHECKING:
    import pandas as pd

    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger
    from transfers.privacy.step import Screening

log = get_logger(__name__)


class PrepareResult(TypedDict, total=False):
    rows_in: int
    rows_out: int
    held_back: int
    # From Screening.finish: the exclusions by reason and what the flow asked to be recorded.
    excluded: dict[str, int]
    basis: str
    deceased: dict[str, Any]
    opt_outs_overridden: dict[str, int]
    unchecked_no_subject_id: int
    k: dict[str, Any]


def prepare(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> PrepareResult:
    """Hold back quarantined rows, exclude who may not be sent, then minimise, pseudonymise and generalise."""
    totals: dict[str, Any] = {"rows_in": 0, "rows_out": 0, "held_back": 0}
    screening, key = screening_for(run, resolvers)
    try:
        batches = prepared_batches(run, screening, key, run.staging.read_batches("extract"), totals)
        run.staging.write_batches("prepared", batches, columns=run.ref.flow.shared_fields)
        totals.update(screening.finish(ledger))
    finally:
        screening.close()  # a failed attempt: its staged subjects are dropped, never recorded
    log_summary(run, totals)
    return cast("PrepareResult", totals)


def screening_for(run: FlowRun, resolvers: Resolvers) -> tuple[Screening, bytes | None]:
    """The run's :class:`Screening` and pseudonymisation key (from the agreement's secret)."""
    from transfers.privacy.step import Screening, pseudonym_key, subject_lookup_key

    key = pseudonym_key(run, resolvers.secret)
    return Screening(run, key=key, lookup=subject_lookup_key(run, resolvers.secret),
                     connection=resolvers.connection), key


def prepared_batches(run: FlowRun, screening: Screening, key: bytes | None, source: Iterable[pd.DataFrame],
                     totals: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """Each extract batch made safe to send, one out per one in; ``totals`` counts rows in, out and held back."""
    from transfers.privacy import apply_privacy

    flow = run.ref.flow
    held = {tuple(k) for k in (run.staging.read_json("quarantine", []) or [])}
    for batch in source:
        totals["rows_in"] += len(batch)
        if held and len(batch):
            keys = batch[flow.key_fields].astype(str).apply(tuple, axis=1)
            keep = ~keys.isin(held)
            totals["held_back"] += int((~keep).sum())
            batch = batch[keep]
        batch = screening.screen(batch)
        safe, _stats = apply_privacy(batch, flow, key=key, logical_date=run.logical_date,
                                     normalised=screening.normalised(batch))
        screening.sent(batch, safe)
        totals["rows_out"] += len(safe)
        yield safe


def log_summary(run: FlowRun, totals: dict[str, Any]) -> None:
    """The stage's one line: rows sent, held back and left out (by reason), and how fields were shared."""
    fields = run.ref.flow.fields
    excluded: dict[str, int] = totals.get("excluded", {})
    k = totals.get("k")
    log.info("prepared", **run._ctx(
        rows_in=totals["rows_in"], sent=totals["rows_out"], held_back=totals["held_back"],
        left_out=sum(excluded.values()), excluded=excluded, basis=totals.get("basis"),
        pseudonymised=[name for name, spec in fields.items() if spec.share == "pseudonymise"],
        generalised=[name for name, spec in fields.items() if spec.share == "generalise"],
        **({"k": k["k"]} if k else {})))
