"""How long the full quality suite takes on a large extract, batch by batch, against the bare-tools floor.

    uv run python bench/bench_quality.py [ROWS] [DEFECT_EVERY] [--floor]
    (default 1000000 rows, a defect every 1000)

Runs ``check_quality`` with every check of the sample flow mash-referrals.A
(the agreement's derived suite, cross-field order, district reference list,
drift against a made-up history of earlier runs) over ROWS synthetic rows in
batches of 50,000, writing the scorecard and the rectification notice as a
real run does. Every DEFECT_EVERY-th row gets a bad NHS check digit, so the
rectification notice has rows to stream. Prints seconds (wall and CPU),
rows/second and the process's peak resident memory: the memory figure shows
the run stays bounded by one batch plus each key index's fixed share (at most
1,000,000 keys, 16 MB, in memory; the rest spilled to disk), not the extract.

``--floor`` runs, in a fresh process, the same checks written as plain
vectorised pyarrow/numpy (no Great Expectations, no report) over the same
batches and prints the same figures: the yardstick for the project's overhead.
Run the two alternately when the machine is shared.

Batches are made from one generated template batch with fresh record keys,
so generating data is not what is measured (the template is made before the
clock starts; the fresh keys are made per batch, inside the time, in both).
The agreement's key pattern (``R`` and six digits) has room for 1,000,000 keys;
above that the keys get seven digits and the bench widens the pattern to match,
so every row still has a distinct, valid key.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from transfers.agreement import load_config
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT

DAY = date(2026, 11, 23)
BATCH = 50_000
BAD_NHS = "9990001236"


def batches(rows: int, defect_every: int, template: pd.DataFrame) -> Iterator[pd.DataFrame]:
    digits = 6 if rows <= 1_000_000 else 7
    for start in range(0, rows, BATCH):
        frame = template.iloc[: min(BATCH, rows - start)].copy()
        frame["referral_id"] = [f"R{start + j:0{digits}d}" for j in range(len(frame))]
        if defect_every:
            frame.loc[frame.index[::defect_every], "nhs_number"] = BAD_NHS
        yield frame


def sample_flow(rows: int):  # noqa: ANN201 - the agreement's Flow model
    flow = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow
    if rows <= 1_000_000:
        return flow
    spec = flow.fields["referral_id"]
    checks = spec.checks.model_copy(update={"pattern": "^R[0-9]{6,7}$"})
    return flow.model_copy(update={"fields": {**flow.fields, "referral_id": spec.model_copy(update={"checks": checks})}})


def floor(parts: Iterator[pd.DataFrame], flow, day: date) -> tuple[int, Counter[str]]:  # noqa: ANN001
    """The flow's row and extract checks as plain vectorised pyarrow/numpy: failing counts per check."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from transfers.rules import POSTCODE_PATTERN

    failing: Counter[str] = Counter()
    hashes: list[np.ndarray] = []
    limit = pa.scalar(pd.Timestamp(day + timedelta(days=1)), pa.timestamp("s"))
    rows = 0
    nulls: Counter[str] = Counter()
    weights = np.arange(10, 1, -1)
    for frame in parts:
        rows += len(frame)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        failing["relevance"] += len(set(table.column_names) ^ set(flow.fields))
        when: dict[str, pa.ChunkedArray] = {}
        for name, spec in flow.fields.items():
            raw = table[name]
            col = pc.if_else(pc.or_(pc.equal(pc.utf8_length(raw), 0), pc.utf8_is_space(raw)), None, raw)
            c = spec.checks
            nulls[name] += col.null_count
            if c.required:
                failing[f"required.{name}"] += col.null_count
            if c.pattern:
                failing[f"pattern.{name}"] += pc.sum(pc.invert(pc.match_substring_regex(col, c.pattern))).as_py() or 0
            if c.format == "postcode":
                trimmed = pc.utf8_trim_whitespace(col)
                ok = pc.match_substring_regex(trimmed, POSTCODE_PATTERN)
                failing[f"format.{name}"] += pc.sum(pc.invert(ok)).as_py() or 0
                if c.districts:
                    district = pc.utf8_slice_codeunits(pc.utf8_upper(pc.replace_substring(trimmed, " ", "")), 0, -3)
                    inside = pc.is_in(district, pa.array(c.districts))
                    failing[f"district.{name}"] += pc.sum(pc.and_(ok, pc.invert(inside))).as_py() or 0
            if c.format == "date":
                parsed = pc.strptime(col, format="%Y-%m-%d", unit="s", error_is_null=True)
                when[name] = parsed
                failing[f"format.{name}"] += parsed.null_count - col.null_count
                if c.not_future:
                    failing[f"future.{name}"] += pc.sum(pc.greater_equal(parsed, limit)).as_py() or 0
                if c.not_before:
                    low = pa.scalar(pd.Timestamp(c.not_before), pa.timestamp("s"))
                    failing[f"before.{name}"] += pc.sum(pc.less(parsed, low)).as_py() or 0
                if c.recent:
                    since = pa.scalar(pd.Timestamp(c.recent.before(pd.Timestamp(day).to_pydatetime())),
                                      pa.timestamp("s"))
                    failing[f"recent.{name}"] += pc.sum(pc.less(parsed, since)).as_py() or 0
            if c.in_:
                failing[f"in.{name}"] += pc.sum(pc.invert(pc.is_in(col, pa.array([str(v) for v in c.in_])))).as_py() or 0
            if c.nhs_number:
                ten = pc.replace_substring(col, " ", "")
                shaped = pc.fill_null(pc.match_substring_regex(ten, "^[0-9]{10}$"), False).to_numpy()
                text = "".join(pc.filter(ten, shaped).to_pylist()).encode("ascii")
                digits = np.frombuffer(text, dtype=np.uint8).reshape(-1, 10).astype(np.int64) - 48
                check = (11 - (digits[:, :9] @ weights) % 11) % 11
                failing[f"nhs.{name}"] += int(len(col) - col.null_count - ((check != 10) & (check == digits[:, 9])).sum())
        for name, spec in flow.fields.items():
            if spec.checks.after:
                failing[f"order.{name}"] += pc.sum(pc.less(when[name], when[spec.checks.after])).as_py() or 0
        keys = frame[flow.key_fields].astype(str)
        hashes.append(pd.util.hash_pandas_object(keys, index=False, categorize=False).to_numpy())
    everything = np.sort(np.concatenate(hashes))
    failing["record_key"] = int((everything[1:] == everything[:-1]).sum())
    return rows, failing


def main(rows: int, defect_every: int, *, run_floor: bool = False) -> None:
    flow = sample_flow(rows)
    history = [
        {"logical_date": (DAY - timedelta(days=k)).isoformat(), "rows": rows, "nulls": dict.fromkeys(flow.fields, 0)}
        for k in range(10, 0, -1)
    ]
    template = synthetic.referrals(min(BATCH, rows), DAY, seed=7)
    if run_floor:
        print(f"floor: the same checks as plain vectorised pyarrow, {rows:,} synthetic rows in batches of {BATCH:,}",
              flush=True)
        start, cpu = time.perf_counter(), time.process_time()
        checked, failing = floor(batches(rows, defect_every, template), flow, DAY)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{'rows checked':<28} {checked:8,d}; failing: {dict(failing)}")
        print(f"{'floor (pyarrow)':<28} {seconds:8.2f} s   {rows / seconds:12,.0f} rows/s   cpu {cpu:6.2f} s")
        print(f"{'peak resident memory':<28} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MB")
        return

    from transfers.quality import check_quality

    checks = "derived suite + drift" if flow.quality.row_count_drift else "derived suite"
    print(f"flow mash-referrals.A ({checks}), {rows:,} synthetic rows in batches of {BATCH:,}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        outcome = check_quality(
            batches(rows, defect_every, template),
            flow,
            agreement_id="mash-referrals",
            logical_date=DAY,
            report_dir=Path(tmp) / "reports",
            history=history,
        )
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        notice = outcome.rectification_csv.stat().st_size if outcome.rectification_csv else 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'checks run':<28} {len(outcome.checks):8d}")
    print(f"{'rows checked':<28} {outcome.rows:8,d} in {outcome.batches} batches")
    print(f"{'records to fix':<28} {outcome.records_to_fix:8,d} (notice {notice / 1e6:.1f} MB); blocked: "
          f"{', '.join(outcome.blocked) or 'none'}")
    print(f"{'quality suite':<28} {seconds:8.2f} s   {rows / seconds:12,.0f} rows/s   cpu {cpu:6.2f} s")
    print(f"{'peak resident memory':<28} {peak:8.0f} MB")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 1_000_000, int(args[1]) if len(args) > 1 else 1000, run_floor="--floor" in sys.argv)
