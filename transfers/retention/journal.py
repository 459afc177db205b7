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
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.files import private_dir
from transfers.ledger.records import KINDS, Record
from transfers.settings import HomeLayout

if TYPE_CHECKING:
    from transfers.ledger import Ledger


def journal_path(home: Path) -> Path:
    return HomeLayout(home).journal


def keep(home: Path, record: Record) -> Path:
    """Append one record to the journal (its kind, columns, dedupe key, payload and ``at`` as ISO text)."""
    line = {"kind": record.KIND, "agreement": record.agreement, "flow": record.flow,
            "logical_date": record.logical_date.isoformat() if record.logical_date else None,
            "recipient": record.recipient, "dedupe_key": record.dedupe_key(), "payload": record.to_payload(),
            "at": record.at.isoformat() if record.at else None}
    path = journal_path(home)
    private_dir(path.parent)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return path


def replay(home: Path, ledger: Ledger) -> int:
    """Write journalled records to the ledger; returns how many. The journal goes once all are in.

    Raises:
        LedgerUnavailable: the ledger is still down (the journal is kept as it was).
    """
    path = journal_path(home)
    if not path.exists():
        return 0
    count = 0
    for text in path.read_text(encoding="utf-8").splitlines():
        if not text.strip():
            continue
        line = json.loads(text)
        cls = KINDS[line["kind"]]
        ledger.record(cls.from_parts(
            line["payload"], dedupe_key=line.get("dedupe_key"), agreement=line["agreement"], flow=line.get("flow"),
            logical_date=date.fromisoformat(line["logical_date"]) if line.get("logical_date") else None,
            recipient=line.get("recipient"), at=datetime.fromisoformat(line["at"])))
        count += 1
    path.unlink()
    return count
