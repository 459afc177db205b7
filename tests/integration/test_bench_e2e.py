"""bench/bench_e2e.py end to end on a few rows: it sets up its own PostgreSQL table, sshd and keys, runs
``transfers run`` and the psql | gpg | sftp floor, and prints both and their ratios.

Only the shape of what it prints is checked, never a time: the figures are the bench's to report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_e2e.py"
SECONDS = r"\d+\.\d+s"
S = r"\d+\.\d+"


def test_one_pair_prints_the_project_and_the_floor_and_their_ratios():
    # --airflow adds 40-60 s here (one airflow dags test on 2,000 rows, then both sides on a tiny source);
    # every line the default prints is printed the same with it.
    done = subprocess.run([sys.executable, str(BENCH), "2000", "--pairs", "1", "--airflow"], capture_output=True,
                          text=True, timeout=900)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "2,000 rows generated in PostgreSQL" in out
    assert re.search(rf"^pair 1 +{SECONDS} +{SECONDS} +\d+ +{SECONDS} +{SECONDS} +\d+$", out, re.M), out
    assert re.search(rf"^median +{SECONDS} +{SECONDS} +\d+ +{SECONDS} +{SECONDS} +\d+$", out, re.M), out
    assert re.search(r"^ratio project/floor: wall \d+\.\dx, CPU \d+\.\dx, peak memory \d+ MB vs \d+ MB", out, re.M), out
    assert re.search(r"^project CPU/wall: \d\.\d\d", out, re.M), out
    # Every row is a distinct subject, so the register's bytes per subject is a real figure.
    assert re.search(r"subject register .*: [\d.]+ MB, \d+ bytes per subject per disclosure", out), out
    # The floor's process is measured from its own start, not from this Python process's size.
    floor_peak = int(re.search(r"^median .* (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert floor_peak < 100, out
    # Through Airflow: the same flow's DAG, its figures beside the CLI's, and Airflow's fixed start-up.
    assert re.search(rf"^airflow 1 +{SECONDS} +{SECONDS} +{SECONDS} +\d+ +{SECONDS} +{SECONDS}$", out, re.M), out
    assert re.search(rf"^through Airflow: CLI wall {S} s, Airflow wall {S} s, difference [+-]{S} s", out, re.M), out
    assert re.search(rf"^Airflow's fixed start-up \(airflow dags test on a 100-row source\): {S} s", out, re.M), out
    assert re.search(r"^the difference is (NOT )?within Airflow's fixed start-up", out, re.M), out
    # Its source table (a schema of its own, owned by a role of the same name) is gone.
    name = re.search(r"table (bench_e2e_[0-9a-f]+)\.referrals", out).group(1)  # type: ignore[union-attr]
    assert _left_in_postgres(name) == ([], [])
    assert _left_in_postgres(f"{name}_tiny") == ([], [])


def _left_in_postgres(name: str) -> tuple[list, list]:
    from sqlalchemy import create_engine, text

    engine = create_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/test")
    try:
        with engine.connect() as conn:
            schemas = conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname = :n"), {"n": name}).all()
            roles = conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname = :n"), {"n": name}).all()
    finally:
        engine.dispose()
    return list(schemas), list(roles)

