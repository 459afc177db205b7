"""Size and speed of the subject register over many nights, through the prepare and deliver steps' own calls.

    uv run python bench/bench_subjects.py [SUBJECTS] [NIGHTS] [--new-each-night] [--url postgresql+psycopg2://...]
        (default 1,000,000 subjects and 30 nights; the same cohort each night unless --new-each-night)

Each night screens, pseudonymises and records SUBJECTS distinct subjects for flow
mash-referrals.A (``Screening.screen/sent``), turns them into the disclosure to its recipient
(``record_disclosure``: the pointer and the count and hash for the ledger entry) and forgets
unsent attempts (``forget_prepared``). With the same cohort each night the field transforms
(``apply_privacy``) run on the first night only and their rows are reused: they are not the
register. Then it prints the register's size on disk (tables and indexes: SQLite's dbstat,
or page counts where dbstat is not compiled in; PostgreSQL's pg_total_relation_size) per
subject per disclosure, the recording rate, and how long one subject's history, a withdrawal's fan-out (the disclosures that held the subject) and checking
one disclosure against its ledger hash take. With --url the register goes to a new PostgreSQL
database made on that server, dropped at the end. Figures only: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from timing import peak_rss_mb

from transfers.agreement import load_config
from transfers.devkit import synthetic
from transfers.settings import PROJECT_ROOT, Settings
from transfers.staging import new_staging_key

DAY = date(2026, 1, 1)
BATCH = 100_000
TABLES = ("subject_headers", "subject_pseudonyms", "subject_members")


def register_bytes(url: str) -> dict[str, int]:
    """Bytes on disk of each register table with its indexes."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                return {t: conn.execute(sa.text("SELECT pg_total_relation_size(:t)"), {"t": t}).scalar_one()
                        for t in TABLES}
            try:
                rows = conn.execute(sa.text("SELECT s.name, m.tbl_name, sum(s.pgsize) FROM dbstat s "
                                            "JOIN sqlite_master m ON m.name = s.name GROUP BY s.name")).all()
            except sa.exc.OperationalError:  # dbstat not compiled in: the whole file, which is all register here
                pages = conn.execute(sa.text("PRAGMA page_count")).scalar_one()
                size = conn.execute(sa.text("PRAGMA page_size")).scalar_one()
                return {"(whole file)": pages * size}
            sizes: dict[str, int] = {}
            for _name, table, size in rows:
                if table in TABLES:
                    sizes[table] = sizes.get(table, 0) + int(size)
            return sizes
    finally:
        engine.dispose()


def postgres_database(url: str) -> tuple[str, str]:
    """A new database on the server of ``url``: (its URL, its name)."""
    name = f"bench_subjects_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return str(sa.engine.make_url(url).set(database=name).render_as_string(hide_password=False)), name


def drop_database(url: str, name: str) -> None:
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def main(subjects: int, nights: int, *, new_each_night: bool, url: str | None) -> None:
    from transfers.flowrun import FlowRun
    from transfers.privacy import apply_privacy, derive_key
    from transfers.privacy.step import Screening, record_disclosure
    from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of

    config = load_config(PROJECT_ROOT / "config")
    ref = config.flow("mash-referrals.A")
    secret = new_staging_key()  # any random text of 16+ bytes
    key = derive_key(secret, domain="mash-referrals", key_id=ref.agreement.pseudonymisation.key_id)
    lookup = lookup_key(secret, "mash-referrals")
    template = synthetic.referrals(min(BATCH, subjects), DAY, seed=1)
    pg = postgres_database(url) if url else None
    print(f"{subjects:,} subjects x {nights} nights ({'new subjects' if new_each_night else 'the same cohort'} "
          f"each night), flow {ref.key} to {', '.join(r.partner for r in ref.flow.to)}, "
          f"register in {'PostgreSQL' if pg else 'SQLite'}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(home=Path(tmp) / "state", config_dir=PROJECT_ROOT / "config",
                                ledger_url=pg[0] if pg else None)
            recording = disclosing = transforming = 0.0
            # The same cohort gives the same transformed rows each night: made once, they are not measured here.
            transforms: dict[int, pd.DataFrame] = {}
            for night in range(nights):
                day = DAY + timedelta(days=night)
                run = FlowRun(settings, config, ref, day, staging_key=new_staging_key())
                first = 9_000_000_000 + (night * subjects if new_each_night else 0)
                screening = Screening(run, key=key, lookup=lookup, connection=None)
                for at in range(0, subjects, BATCH):
                    n = min(BATCH, subjects - at)
                    frame = template.iloc[:n].copy()
                    frame["nhs_number"] = [str(first + at + i) for i in range(n)]
                    start = time.perf_counter()
                    kept = screening.screen(frame)
                    screened = time.perf_counter()
                    if new_each_night or at not in transforms:
                        transforms[at] = apply_privacy(kept, ref.flow, key=key, logical_date=day,
                                                       normalised=screening.normalised(kept))[0]
                    safe = transforms[at]
                    transformed = time.perf_counter()
                    screening.sent(kept, safe)
                    recording += (screened - start) + (time.perf_counter() - transformed)
                    transforming += transformed - screened
                start = time.perf_counter()
                screening.finish(None)
                recording += time.perf_counter() - start
                start = time.perf_counter()
                for recipient in ref.flow.to:
                    found = record_disclosure(run, recipient.partner, run.disclosure_key(recipient))
                    assert found is not None and found["subjects"] == subjects, found
                index = SubjectIndex.for_settings(settings)
                index.forget_prepared(run.ref.key, day)
                index.close()
                disclosing += time.perf_counter() - start
                run.staging.clear()
                if night == 0 or (night + 1) % 10 == 0 or night == nights - 1:
                    done = subjects * (night + 1)
                    print(f"  night {night + 1:3d}: screened and recorded at {done / recording:9,.0f} subjects/s "
                          f"(field transforms {transforming:7.1f} s so far), "
                          f"disclosure (pointer + hash) {disclosing / (night + 1):6.2f} s a night", flush=True)
            sizes = register_bytes(settings.ledger_database)
            total = sum(sizes.values())
            disclosures = nights * len(ref.flow.to)
            print("register on disk: " + ", ".join(f"{t} {b / 1e6:,.1f} MB" for t, b in sizes.items()))
            print(f"  {total / 1e6:,.1f} MB = {total / (subjects * disclosures):,.1f} bytes per subject per "
                  f"disclosure ({disclosures} disclosures of {subjects:,})")
            index = SubjectIndex.for_settings(settings)
            one = lookup_of(str(9_000_000_000 + subjects // 2), lookup)
            for label, fn in [
                ("history of one subject", lambda: index.events([one])),
                ("withdrawal fan-out (disclosed events)", lambda: index.events([one], event="disclosed")),
                ("check one disclosure (count + hash)", lambda: index.digest(
                    "disclosed", run.disclosure_key(ref.flow.to[0]))),
            ]:
                start = time.perf_counter()
                value = fn()
                seconds = time.perf_counter() - start
                shown = len(value) if isinstance(value, list) else value["subjects"]
                print(f"{label:<40} {seconds:8.3f} s  ({shown:,})")
            index.close()
    finally:
        if pg and url:
            drop_database(url, pg[1])
    print(f"peak resident memory: {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subjects", nargs="?", type=int, default=1_000_000)
    parser.add_argument("nights", nargs="?", type=int, default=30)
    parser.add_argument("--new-each-night", action="store_true", help="distinct subjects every night")
    parser.add_argument("--url", help="a PostgreSQL server (postgresql+psycopg2://...@127.0.0.1/test): the register goes "
                                      "to a new database there, dropped at the end")
    args = parser.parse_args()
    main(args.subjects, args.nights, new_each_night=args.new_each_night, url=args.url)
