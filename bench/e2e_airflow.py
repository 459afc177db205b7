"""``bench_e2e.py --airflow``: the same flow through ``airflow dags test`` as through ``transfers run`` (issue 14).

Issue 14's target: through Airflow, the flow costs at most its fixed start-up more than the CLI. The
Airflow side runs the flow's send DAG with ``airflow dags test <flow> <date>`` as a subprocess, with a fresh
``TRANSFERS_HOME`` and a fresh ``AIRFLOW_HOME`` each time (its SQLite metadata database copied from one
migrated once before the first run, as ``transfers.devkit.demo`` does: migrating is set-up, not the run).
Connections and variables are the CLI run's environment variables, the same ones.

The DAG has a wait step the CLI does not run by default: ``await_receipt``, a sensor that ends only on the
recipient's signed receipt. A stand-in recipient (a thread of the bench, not counted) signs an accepting
receipt as soon as the manifest lands, and sensors look again every ``POKE_SECONDS``: that wait (at most one
look more) is part of what Airflow costs over the CLI here, and it is inside the start-up measured below too.

Airflow's fixed start-up is measured as the same ``airflow dags test`` on a tiny source (``TINY_ROWS`` rows,
a table of its own), next to the CLI on that same tiny source, so both "Airflow on a tiny night" and
"Airflow's own share of it" are printed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TINY_ROWS = 100
POKE_SECONDS = "1"


def airflow_command() -> list[str]:
    installed = Path(sys.executable).with_name("airflow")
    return [str(installed)] if installed.exists() else [sys.executable, "-m", "airflow"]


def airflow_env(env: dict[str, str], root: Path) -> dict[str, str]:
    """The CLI run's environment plus what the DAG needs across its task processes; migrates a template once."""
    from transfers.settings import PROJECT_ROOT
    from transfers.staging import new_staging_key

    env = {**env, "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__UNIT_TEST_MODE": "False", "TRANSFERS_POKE_SECONDS": POKE_SECONDS,
           # The CLI keeps its staging key in memory for its one process; the DAG's tasks share this one.
           "AIRFLOW_VAR_TRANSFERS_STAGING_KEY": new_staging_key()}
    template = root / "airflow-template"
    template.mkdir(parents=True)
    done = subprocess.run([*airflow_command(), "db", "migrate"], env={**env, "AIRFLOW_HOME": str(template)},
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"airflow db migrate exited {done.returncode}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    env["BENCH_AIRFLOW_TEMPLATE"] = str(template / "airflow.db")
    return env


def fresh_airflow_home(env: dict[str, str], home: Path) -> dict[str, str]:
    home.mkdir(parents=True)
    shutil.copy2(env["BENCH_AIRFLOW_TEMPLATE"], home / "airflow.db")
    return {**env, "AIRFLOW_HOME": str(home)}


def dags_test_argv(flow: str, day: str) -> list[str]:
    return [*airflow_command(), "dags", "test", flow, day]


class _Recipient(threading.Thread):
    """Signs an accepting receipt for each manifest that lands under ``inbound``, as the recipient would."""

    def __init__(self, inbound: Path, signing_key: str) -> None:
        super().__init__(daemon=True)
        self.inbound = inbound
        self.secret = signing_key
        self.stop = threading.Event()
        self.answered = 0

    def run(self) -> None:
        from transfers.receipt import MANIFEST_SUFFIX, RECEIPT_SUFFIX, RECEIPTS_DIR

        while not self.stop.wait(0.2):
            if not self.inbound.exists():
                continue
            for manifest_path in self.inbound.rglob(f"*{MANIFEST_SUFFIX}"):
                base = manifest_path.name.removesuffix(MANIFEST_SUFFIX)
                folder = manifest_path.parent / RECEIPTS_DIR
                if (folder / f"{base}{RECEIPT_SUFFIX}").exists():
                    continue
                self._answer(manifest_path, folder, base)

    def _answer(self, manifest_path: Path, folder: Path, base: str) -> None:
        from transfers.crypto import load_own_signing_key, own_key_fingerprint, sign_detached
        from transfers.receipt import Receipt, ReceiptFile, delivery_id

        data = manifest_path.read_bytes()
        manifest: dict[str, Any] = json.loads(data)
        fpr = own_key_fingerprint(self.secret)
        agreement, flow = base.split("_")[:2]
        receipt = Receipt(
            delivery_id=delivery_id(agreement, flow, manifest["logical_date"], manifest["recipient"]),
            agreement=manifest["agreement"], flow=flow, logical_date=manifest["logical_date"],
            sender=manifest["sender"], recipient=manifest["recipient"], manifest_sha256=hashlib.sha256(data).hexdigest(),
            files=tuple(ReceiptFile(f["name"], f["size"], f["sha256"]) for f in manifest["files"]),
            rows=manifest["rows"], status="accepted", reason="",
            received_at=datetime.now(UTC).isoformat(timespec="seconds"), destroy_by=None,
            recipient_ledger_head=None, signer_fingerprint=fpr).to_bytes()
        folder.mkdir(exist_ok=True)
        # The signature first: the sender looks for the receipt, then reads its signature.
        (folder / f"{base}.receipt.json.asc").write_text(sign_detached(receipt, load_own_signing_key(self.secret, fpr)))
        (folder / f"{base}.receipt.json").write_bytes(receipt)
        self.answered += 1


@contextmanager
def recipient_standin(inbound: Path, signing_key: str) -> Iterator[_Recipient]:
    standin = _Recipient(inbound, signing_key)
    standin.start()
    try:
        yield standin
    finally:
        standin.stop.set()
        standin.join()


@dataclass
class Sides:
    """One pair's Airflow figures next to the CLI's: the full night and the tiny one (start-up)."""

    cli: Any  # bench_e2e.Run
    airflow: Any
    cli_tiny: Any
    airflow_tiny: Any


def report(pairs: list[Sides]) -> None:
    print()
    print(f"{'':<8}{'CLI wall':>13}{'Airflow wall':>14}{'CPU':>9}{'peak MB':>9}   "
          f"{'tiny: CLI':>10}{'Airflow':>10}")
    for i, s in enumerate(pairs, 1):
        print(f"airflow {i:<3}{s.cli.wall:>9.2f}s{s.airflow.wall:>13.2f}s{s.airflow.cpu:>8.2f}s{s.airflow.peak_mb:>9.0f}"
              f"   {s.cli_tiny.wall:>9.2f}s{s.airflow_tiny.wall:>9.2f}s")

    def median(side: str, key: str) -> float:
        return statistics.median(getattr(getattr(s, side), key) for s in pairs)

    cw, aw, tc, ta = median("cli", "wall"), median("airflow", "wall"), median("cli_tiny", "wall"), median(
        "airflow_tiny", "wall")
    print(f"{'median':<11}{cw:>9.2f}s{aw:>13.2f}s{median('airflow', 'cpu'):>8.2f}s{median('airflow', 'peak_mb'):>9.0f}"
          f"   {tc:>9.2f}s{ta:>9.2f}s")
    print(f"through Airflow: CLI wall {cw:.2f} s, Airflow wall {aw:.2f} s, difference {aw - cw:+.2f} s; "
          f"CPU CLI {median('cli', 'cpu'):.2f} s, Airflow {median('airflow', 'cpu'):.2f} s; "
          f"peak memory CLI {median('cli', 'peak_mb'):.0f} MB, Airflow {median('airflow', 'peak_mb'):.0f} MB")
    print(f"Airflow's fixed start-up (airflow dags test on a {TINY_ROWS}-row source): {ta:.2f} s; the CLI on the same "
          f"source {tc:.2f} s, so Airflow's own share {ta - tc:.2f} s; its first task starts "
          f"{median('airflow_tiny', 'first_task'):.2f} s after it (on the full source "
          f"{median('airflow', 'first_task'):.2f} s)")
    within = "within" if aw - cw <= ta else "NOT within"
    own = "within" if aw - cw <= ta - tc else "not within"
    print(f"the difference is {within} Airflow's fixed start-up ({aw - cw:.2f} s vs {ta:.2f} s); "
          f"{own} its own share beyond the CLI's ({ta - tc:.2f} s)")


def first_task_at(log: Path) -> float:
    """The epoch second of the first "Task started" line in an ``airflow dags test`` log (its UTC timestamp)."""
    with log.open(errors="replace") as lines:
        for line in lines:
            if "Task started" in line:
                return datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
    raise SystemExit(f"no task started in {log}")
