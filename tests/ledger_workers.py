"""Several processes appending to one ledger at once, for the SQLite and PostgreSQL tests.

Each worker is a separate Python process (as two Airflow tasks would be): it opens
the ledger (racing the others to create the table), waits for a shared signal,
then appends. The checks prove ``seq`` stayed gapless and the chain verifies.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from transfers.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import sys, time
from pathlib import Path
from transfers.ledger import Ledger

url, schema, anchor, name, n, ready, go = sys.argv[1:8]
ledger = Ledger(url, anchor_path=Path(anchor), schema=schema or None)  # may race to create the table
Path(ready).touch()
deadline = time.monotonic() + 60
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("never told to go")
    time.sleep(0.002)
for i in range(int(n)):
    entry, created = ledger.append("quality", agreement="mash", flow=name, dedupe_key=f"{name}:{i}",
                                   payload={"worker": name, "i": i})
    assert created, entry
again, created = ledger.append("quality", agreement="mash", flow=name, dedupe_key=f"{name}:0")
assert not created and again.payload == {"worker": name, "i": 0}
"""


def run_concurrent_appends(url: str, anchor: Path, work: Path, *, workers: int, each: int,
                           schema: str = "") -> None:
    """Start ``workers`` processes on one ledger, release them together, wait for all."""
    work.mkdir(parents=True, exist_ok=True)
    go = work / "go"
    procs, ready = [], []
    for w in range(workers):
        ready.append(work / f"ready-{w}")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, url, schema, str(anchor), f"w{w}", str(each), str(ready[-1]), str(go)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    deadline = time.monotonic() + 90
    while not all(r.exists() for r in ready):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for p in procs):
            break
        time.sleep(0.01)
    go.touch()
    failures = []
    for p in procs:
        try:
            _out, err = p.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            p.kill()
            _out, err = p.communicate()
        if p.returncode != 0:
            failures.append(err[-2000:])
    assert failures == [], "\n---\n".join(failures)


def check_concurrent_result(ledger: Ledger, anchor: Path, *, workers: int, each: int) -> None:
    entries = list(ledger.entries())
    total = workers * each
    assert [e.seq for e in entries] == list(range(1, total + 1))  # gapless, no duplicates
    for w in range(workers):
        mine = [e.payload["i"] for e in entries if e.flow == f"w{w}"]
        assert mine == list(range(each))  # each process's appends, once each, in its own order
    switches = sum(1 for a, b in zip(entries, entries[1:], strict=False) if a.flow != b.flow)
    assert switches >= workers, "the processes did not overlap; the test proved nothing"
    report = ledger.verify()
    assert report.ok, report.problems
    assert report.checked == total
    assert json.loads(anchor.read_text())["seq"] == total  # the anchor never moved backwards
