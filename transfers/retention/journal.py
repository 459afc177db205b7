"""Deletions done but not yet in the ledger: a local journal, written to the ledger on the next purge.

A copy is deleted first and recorded second (recording first would claim a
deletion that might then fail). If the ledger goes down in between, the
record is not lost: it is appended to ``<home>/retention/unrecorded.jsonl``
(flushed to disk) and the next purge writes it to the ledger before anything
else. Dedupe keys make a replay that is interrupted and repeated harmless.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from transfers.files import private_dir
from transfers.settings import HomeLayout


def journal_path(home: Path) -> Path:
    return HomeLayout(home).journal


def keep(home: Path, record: dict) -> Path:
    """Append one ledger record (``kind``, ``agreement``, ..., ``at`` as ISO text) to the journal."""
    path = journal_path(home)
    private_dir(path.parent)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def replay(home: Path, ledger) -> int:  # noqa: ANN001
    """Write journalled records to the ledger; returns how many. The journal goes once all are in.

    Raises:
        LedgerUnavailable: the ledger is still down (the journal is kept as it was).
    """
    from datetime import date

    path = journal_path(home)
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        ledger.append(record["kind"], agreement=record["agreement"], flow=record.get("flow"),
                      logical_date=date.fromisoformat(record["logical_date"]) if record.get("logical_date") else None,
                      recipient=record.get("recipient"), dedupe_key=record.get("dedupe_key"),
                      payload=record["payload"], at=datetime.fromisoformat(record["at"]))
        count += 1
    path.unlink()
    return count
