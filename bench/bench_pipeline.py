"""Throughput of the local stages of a flow run, on synthetic rows.

    uv run python bench/bench_pipeline.py [ROWS]      (default 200000)

Prints seconds and rows/second for staging (encrypted batches), quality (GX),
privacy (minimise + HMAC + generalise) and OpenPGP encryption, and the peak
resident memory, so a change that slows a stage or loads everything at once
shows up as a figure, not as a flaky timed test. Delivery is left out: its
cost is the network's.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import pandas as pd
from timing import peak_rss_mb, timed

from transfers.agreement import load_config
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT
from transfers.staging import Staging, new_staging_key

DAY = date(2026, 11, 23)
BATCH = 50_000


def main(rows: int) -> None:
    from transfers.crypto import encrypt_to_file, load_recipient_key
    from transfers.devkit.gpg import GpgHome
    from transfers.privacy import apply_privacy
    from transfers.quality import check_quality

    flow = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow
    print(f"flow mash-referrals.A, {rows:,} synthetic rows in batches of {BATCH:,}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = [synthetic.referrals(min(BATCH, rows - i), DAY, seed=i) for i in range(0, rows, BATCH)]
        for i, frame in enumerate(frames):  # unique keys across batches
            frame["referral_id"] = [f"R{(i * BATCH + j) % 1_000_000:06d}" for j in range(len(frame))]
        staging = Staging(work / "run", new_staging_key())
        timed("staging write (Fernet)", rows, lambda f=frames: staging.write_batches("extract", f))
        del frames
        timed("quality (GX, six dims)", rows, lambda: check_quality(
            staging.read_batches("extract"), flow, agreement_id="mash-referrals", logical_date=DAY,
            report_dir=work / "reports"))
        key = b"k" * 32
        timed("privacy (minimise+HMAC)", rows, lambda: staging.write_batches(
            "prepared", (apply_privacy(b, flow, key=key, logical_date=DAY)[0] for b in staging.read_batches("extract")),
            columns=flow.shared_fields))
        gpg = GpgHome(work / "gnupg")
        fpr = gpg.generate_key("Bench <bench@example.invalid>", algo="cv25519")
        gpg.export_public(fpr, work / "bench.asc")
        recipient = load_recipient_key(work / "bench.asc", fpr)
        plaintext = pd.concat(list(staging.read_batches("prepared"))).to_csv(index=False).encode()
        print(f"{'delivery file size':<34} {len(plaintext) / 1e6:8.1f} MB plaintext")
        out = work / "out.csv.pgp"
        timed("encrypt (pgpy, AES-256)", rows, lambda: encrypt_to_file(plaintext, recipient, out, filename="out.csv"))
        timed("decrypt (gpg, recipient)", rows, lambda: subprocess.run(
            ["gpg", "--homedir", str(gpg.path), "--batch", "--quiet", "--decrypt", "--output", "/dev/null", str(out)],
            check=True))
    peak = peak_rss_mb()
    print(f"{'peak resident memory':<34} {peak:8.0f} MB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
