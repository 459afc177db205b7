"""The demo's ledger of November 2026 (``tests/fixtures/ledger-2026-11.jsonl``), its rows as the code wrote them.

43 entries of every kind a run, a withdrawal, a correction and a purge write (see ``test_records``'s
``old_ledger`` for how it was made). Synthetic data; no identifier in clear.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from transfers.ledger import Ledger

FIXTURE = Path(__file__).parents[1] / "fixtures" / "ledger-2026-11.jsonl"


def write_demo_ledger(path: Path) -> int:
    """A SQLite ledger at ``path`` holding the fixture's rows as stored (so they still verify); how many."""
    Ledger(f"sqlite:///{path}").close()  # the table and its triggers, as today's code makes them
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines()]
    db = sqlite3.connect(path)
    with db:
        columns = list(rows[0])
        db.executemany(
            f"INSERT INTO ledger_entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            [tuple(row[c] for c in columns) for row in rows],
        )
    db.close()
    return len(rows)
