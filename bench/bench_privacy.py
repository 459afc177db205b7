"""Cost of the privacy bookkeeping in the prepare and deliver steps, on synthetic rows.

    uv run python bench/bench_privacy.py [ROWS] [WITHDRAWN]     (default 200000 rows, 20000 withdrawals)

Prints seconds and rows/second for loading a consent register, screening rows
against it, recording the subjects sent (SQLite beside the ledger), turning
them into one disclosure and hashing them for its ledger entry, the k count,
and the peak resident memory. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
from timing import peak_rss_mb, timed

from transfers.agreement import load_config
from transfers.connections import ConnInfo
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT, Settings
from transfers.staging import new_staging_key

DAY = date(2026, 11, 23)
BATCH = 50_000


def main(rows: int, withdrawn: int) -> None:
    from transfers.flowrun import FlowRun
    from transfers.privacy import apply_privacy, derive_key
    from transfers.privacy.step import Screening, record_disclosure
    from transfers.privacy.subjects import lookup_key

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = [synthetic.referrals(min(BATCH, rows - i), DAY, seed=i) for i in range(0, rows, BATCH)]
        numbers = pd.concat(f["nhs_number"] for f in frames)
        register = pd.DataFrame({"subject": numbers.iloc[:withdrawn], "status": "withdrawn", "effective": "2026-01-01"})
        register.to_csv(work / "register.csv", index=False)
        config = load_config(PROJECT_ROOT / "config")
        ref = config.flow("mash-referrals.A")
        data = ref.flow.model_dump(by_alias=True)
        data["consent"]["consent_register"] = {"kind": "csv", "connection": "lists", "path": "register.csv"}
        flow = type(ref.flow).model_validate(data)
        ref = type(ref)(ref.agreement, flow, ref.path)
        settings = Settings(home=work / "state", config_dir=PROJECT_ROOT / "config")
        run = FlowRun(settings, config, ref, DAY, staging_key=new_staging_key())
        secret = new_staging_key()  # any random text of 16+ bytes
        key = derive_key(secret, domain="mash-referrals", key_id="k1")
        print(f"flow mash-referrals.A, {rows:,} rows in batches of {BATCH:,}, {withdrawn:,} withdrawals")
        screening = timed("load register", withdrawn, lambda: Screening(
            run, key=key, lookup=lookup_key(secret, "mash-referrals"),
            connection=lambda _c: ConnInfo("lists", "fs", extra={"path": str(work)})))

        def screen_and_record() -> None:
            for frame in frames:
                kept = screening.screen(frame)
                safe, _ = apply_privacy(kept, flow, key=key, logical_date=DAY, normalised=screening.normalised(kept))
                screening.sent(kept, safe)

        timed("screen + transform + record sent", rows, screen_and_record)
        result = timed("finish (k, ledger entries)", rows, lambda: screening.finish(None))
        subjects = timed("disclosure copy + hash", rows - withdrawn,
                         lambda: record_disclosure(run, "south-yorkshire-police", "disclosure:bench"))
        print(f"excluded {result['excluded']}, k={result['k']['k']}, subjects recorded {subjects['subjects']:,}")
        size = (work / "state" / "ledger.db").stat().st_size
        per = size / max(1, subjects["subjects"])
        print(f"subject tables on disk: {size / 1e6:,.1f} MB ({per:,.0f} bytes per subject sent, "
              "the whole ledger database: the register's tables and indexes)")
    peak = peak_rss_mb()
    print(f"peak resident memory: {peak:,.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000, int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
