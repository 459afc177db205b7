"""Throughput of the local stages of a flow run, on synthetic rows.

    uv run python bench/bench_pipeline.py [ROWS]             (default 200000)
    uv run python bench/bench_pipeline.py ROWS staging     staging write and read only
    uv run python bench/bench_pipeline.py ROWS extract     PostgreSQL extract: row by row, then COPY

Prints seconds and rows/second for staging (encrypted batches), quality (GX),
privacy (minimise + HMAC + generalise) and OpenPGP encryption, and the peak
resident memory, so a change that slows a stage or loads everything at once
shows up as a figure, not as a flaky timed test. Delivery is left out: its
cost is the network's.

``extract`` fills a table of ROWS referrals in the local PostgreSQL (database
``test`` on 127.0.0.1:5432, or ``BENCH_PG_DATABASE``), reads it both ways, and drops it.
"""

from __future__ import annotations

import os
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


def _frames(rows: int) -> list[pd.DataFrame]:
    frames = [synthetic.referrals(min(BATCH, rows - i), DAY, seed=i) for i in range(0, rows, BATCH)]
    for i, frame in enumerate(frames):  # unique keys across batches
        frame["referral_id"] = [f"R{(i * BATCH + j) % 1_000_000:06d}" for j in range(len(frame))]
    return frames


def staging_only(rows: int) -> None:
    """Write and read the extract through staging; the rows are built first, outside the timing."""
    print(f"staging, {rows:,} synthetic rows in batches of {BATCH:,}")
    with tempfile.TemporaryDirectory() as tmp:
        frames = _frames(rows)
        staging = Staging(Path(tmp) / "run", new_staging_key())
        timed("staging write", rows, lambda f=frames: staging.write_batches("extract", f))
        del frames
        timed("staging read (DataFrames)", rows, lambda: sum(len(b) for b in staging.read_batches("extract")))
        if hasattr(staging, "read_tables"):
            timed("staging read (Arrow tables)", rows, lambda: sum(t.num_rows for t in staging.read_tables("extract")))
        size = sum(p.stat().st_size for p in (Path(tmp) / "run" / "extract").glob("part-*"))
        print(f"{'staged size':<34} {size / 1e6:8.1f} MB")
    print(f"{'peak resident memory':<34} {peak_rss_mb():8.0f} MB")


def extract_only(rows: int) -> None:
    """The PostgreSQL extract of ``rows`` referrals, the row-by-row path then COPY, into nothing."""
    import sqlalchemy as sa

    from transfers import sources
    from transfers.agreement import Source
    from transfers.connections import ConnInfo

    database = os.environ.get("BENCH_PG_DATABASE", "test")
    engine = sa.create_engine(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}")
    table = f"bench_referrals_{os.getpid()}"
    with engine.begin() as conn:
        conn.execute(sa.text(
            f"CREATE TABLE {table} AS SELECT 'R' || lpad(g::text, 7, '0') AS referral_id, "  # noqa: S608 - ours
            "(9990000000 + g)::text AS nhs_number, (ARRAY['Amy','Ben','Cara','Dev'])[1 + g % 4] AS forename, "
            "(ARRAY['Smith','Jones','Khan','Brown'])[1 + g % 4] AS surname, "
            "date '2026-11-23' - (365 + g % 5000) AS date_of_birth, 'S6' || (g % 9) || ' ' || (g % 9) || 'AB' AS postcode, "
            "date '2026-11-23' AS referral_date, timestamp '2026-11-23 08:00' + g * interval '1 second' AS received_at, "
            "(g % 5)::numeric / 2 AS score, (ARRAY['low','medium','high'])[1 + g % 3] AS risk_level, g % 7 = 0 AS urgent "
            f"FROM generate_series(1, {rows}) g"))
    print(f"PostgreSQL extract, {rows:,} rows x 11 columns (text, date, timestamp, numeric, boolean), "
          f"batches of {BATCH:,}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            query = f"SELECT * FROM {table} WHERE referral_date = :ds ORDER BY referral_id"  # noqa: S608
            (Path(tmp) / "q.sql").write_text(query)
            source = Source(kind="sql", connection="bench", query="q.sql", batch_rows=BATCH)
            conn_info = ConnInfo("bench", "postgres", host="127.0.0.1", port=5432, login="postgres", schema=database)

            read = getattr(sources, "extract_batches", sources.extract)  # before issue 14: extract only

            def run() -> int:
                batches = read(source, conn_info, config_dir=Path(tmp), logical_date=DAY)
                return sum(b.num_rows if hasattr(b, "num_rows") else len(b) for b in batches)

            copy_path = getattr(sources, "_copy", None)
            for _ in range(2):  # alternately, twice: other work on the machine moves both figures
                sources._copy = lambda *args, **kwargs: None
                timed("extract, row by row (fetchmany)", rows, run)
                if copy_path is not None:
                    sources._copy = copy_path
                    timed("extract, COPY into Arrow", rows, run)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()
    print(f"{'peak resident memory':<34} {peak_rss_mb():8.0f} MB")


def main(rows: int) -> None:
    from transfers.crypto import encrypt_to_file, load_recipient_key
    from transfers.devkit.gpg import GpgHome
    from transfers.privacy import apply_privacy
    from transfers.quality import check_quality

    flow = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A").flow
    print(f"flow mash-referrals.A, {rows:,} synthetic rows in batches of {BATCH:,}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        frames = _frames(rows)
        staging = Staging(work / "run", new_staging_key())
        timed("staging write (Arrow, AES-GCM)", rows, lambda f=frames: staging.write_batches("extract", f))
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
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    {"staging": staging_only, "extract": extract_only}.get(sys.argv[2] if len(sys.argv) > 2 else "", main)(count)
