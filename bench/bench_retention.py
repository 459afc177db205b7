"""Cost of a purge and of the IG report as holdings and the ledger grow.

    uv run python bench/bench_retention.py [FILES] [DISCLOSURES]   (default 5000 files, 2000 disclosures)

Makes FILES encrypted-outbox files across dates for flow A, and DISCLOSURES
disclosure entries (one remote file each, sender may not remove, so no network),
then prints seconds for: inventory (listing every place), plan (what is due),
execute (delete, check, record each in the ledger), the retention audit of
``ledger verify`` and building the IG report; plus peak resident memory.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml

from transfers.agreement import load_config
from transfers.ledger.records import Disclosure, RemoteFile
from transfers.reports.ig import build
from transfers.retention import execute_purge, inventory, plan_purge
from transfers.retention.audit import retention_gaps
from transfers.settings import PROJECT_ROOT, Settings


def timed(label: str, fn):
    start = time.perf_counter()
    result = fn()
    print(f"{label:<28} {time.perf_counter() - start:8.2f} s")
    return result


def main(files: int, disclosures: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(PROJECT_ROOT / "config", root / "config")
        path = root / "config" / "agreements" / "mash-referrals.yaml"
        data = yaml.safe_load(path.read_text())
        data["flows"][0]["retention"]["remote"] = "P14D"  # sender may not remove: nothing to connect to
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        settings = Settings(home=root / "home", config_dir=root / "config")
        config = load_config(settings.config_dir)
        ledger = settings.open_ledger()
        for i in range(files):
            day = date(2026, 1, 1) + timedelta(days=i % 300)
            target = settings.layout.outbox_dir("mash-referrals", "A", day, "south-yorkshire-police") / f"part{i:06d}.csv.pgp"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"x" * 1024)
        at = datetime.now(UTC) - timedelta(days=30)
        for i in range(disclosures):
            # A disclosure's dedupe key is (flow, logical date, recipient): one run's date each, all sent at ``at``.
            ledger.record(Disclosure(
                agreement="mash-referrals", flow="mash-referrals.A", logical_date=at.date() - timedelta(days=i),
                recipient="south-yorkshire-police", at=at, rows=10, fields=("a",),
                files=(RemoteFile(f"inbound/{i}.pgp", 1, "0" * 64, "delivered"),)))
        now = datetime.now(UTC) + timedelta(days=8)
        print(f"{files} local files, {disclosures} disclosures in the ledger")
        held = timed("inventory", lambda: inventory(settings, config, ledger))
        due = timed("plan", lambda: plan_purge(settings, config, ledger, now=now))
        report = timed("execute (delete+record)", lambda: execute_purge(due, settings, config, ledger,
                                                                       lambda c: None, now=now))
        gaps = timed("ledger verify: retention", lambda: retention_gaps(settings, config, ledger, now=now))
        timed("IG report (build)", lambda: build(settings, config, ledger, date(2020, 1, 1), date(2030, 1, 1),
                                                 now=now))
        print(f"held {len(held)}, due {len(due)}, deleted {report.deleted}, failed {len(report.failed)}, "
              f"gaps {len(gaps)}")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000, int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
