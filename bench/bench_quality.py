"""How long the full quality suite takes on a large extract, batch by batch.

    uv run python bench/bench_quality.py [ROWS] [DEFECT_EVERY]   (default 1000000 rows, a defect every 1000)

Runs ``check_quality`` with every check of the sample flow mash-referrals.A
(the agreement's derived suite, cross-field order, district reference list,
drift against a made-up history of earlier runs) over ROWS synthetic rows in
batches of 50,000, writing the scorecard and the rectification notice as a
real run does. Every DEFECT_EVERY-th row gets a bad NHS check digit, so the
rectification notice has rows to stream. Prints seconds, rows/second and the
process's peak resident memory: the memory figure shows the run stays bounded
by one batch, not the extract.

Batches are made from one generated template batch with fresh record keys,
so generating data is not what is measured.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from transfers.agreement import load_config
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT

DAY = date(2026, 11, 23)
BATCH = 50_000
BAD_NHS = "9990001236"


def batches(rows: int, defect_every: int) -> Iterator[pd.DataFrame]:
    template = synthetic.referrals(min(BATCH, rows), DAY, seed=7)
    for start in range(0, rows, BATCH):
        frame = template.iloc[: min(BATCH, rows - start)].copy()
        # six-digit keys (the agreement's pattern), unique across the whole extract up to 1,000,000 rows
        frame["referral_id"] = [f"R{(start + j) % 1_000_000:06d}" for j in range(len(frame))]
        if defect_every:
            frame.loc[frame.index[::defect_every], "nhs_number"] = BAD_NHS
        yield frame


def main(rows: int, defect_every: int) -> None:
    from transfers.quality import check_quality

    flow = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow
    history = [
        {"logical_date": (DAY - timedelta(days=k)).isoformat(), "rows": rows, "nulls": dict.fromkeys(flow.fields, 0)}
        for k in range(10, 0, -1)
    ]
    checks = "derived suite + drift" if flow.quality.row_count_drift else "derived suite"
    print(f"flow mash-referrals.A ({checks}), {rows:,} synthetic rows in batches of {BATCH:,}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        outcome = check_quality(
            batches(rows, defect_every),
            flow,
            agreement_id="mash-referrals",
            logical_date=DAY,
            report_dir=Path(tmp) / "reports",
            history=history,
        )
        seconds = time.perf_counter() - start
        notice = outcome.rectification_csv.stat().st_size if outcome.rectification_csv else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'checks run':<28} {len(outcome.checks):8d}")
    print(f"{'rows checked':<28} {outcome.rows:8,d} in {outcome.batches} batches")
    print(f"{'records to fix':<28} {outcome.records_to_fix:8,d} (notice {notice / 1e6:.1f} MB); blocked: "
          f"{', '.join(outcome.blocked) or 'none'}")
    print(f"{'quality suite':<28} {seconds:8.2f} s   {rows / seconds:12,.0f} rows/s")
    print(f"{'peak resident memory':<28} {peak:8.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000, int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
