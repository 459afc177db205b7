"""What someone with write access to a SQLite ledger's host can do to hide history.

Each attack leaves the chain itself consistent and rewrites the anchor file
beside the ledger to match, so only heads recorded elsewhere (archived manifests,
an external anchor) can show it. The triggers are dropped first and put back
after, as a database owner would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from transfers.ledger import GENESIS_HASH, chain_hash

TABLE = "ledger_entries"


def _triggers(db: sqlite3.Connection) -> list[tuple[str, str]]:
    return db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
                      (TABLE,)).fetchall()


def _rewrite_anchor(db: sqlite3.Connection, anchor: Path) -> None:
    row = db.execute(f"SELECT seq, hash, at FROM {TABLE} ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        anchor.unlink(missing_ok=True)
        return
    anchor.write_text(json.dumps({"seq": row[0], "hash": row[1], "table": TABLE, "at": row[2]}) + "\n")


def _edit(db_path: Path, anchor: Path, statements) -> None:
    db = sqlite3.connect(db_path)
    saved = _triggers(db)
    for name, _sql in saved:
        db.execute(f'DROP TRIGGER "{name}"')
    statements(db)
    for _name, sql in saved:
        db.execute(sql)
    db.commit()
    _rewrite_anchor(db, anchor)
    db.close()


def truncate(db_path: Path, anchor: Path, keep: int) -> None:
    """Cut every entry after ``keep`` and rewrite the anchor beside the ledger to the new end."""
    _edit(db_path, anchor, lambda db: db.execute(f"DELETE FROM {TABLE} WHERE seq > ?", (keep,)))


def delete_all(db_path: Path, anchor: Path) -> None:
    """Delete every row, and the anchor file with it."""
    _edit(db_path, anchor, lambda db: db.execute(f"DELETE FROM {TABLE}"))
    anchor.unlink(missing_ok=True)


def delete_database(db_path: Path, anchor: Path) -> None:
    """Delete the database file and the anchor beside it."""
    for path in (db_path, anchor, anchor.with_name(anchor.name + ".lock")):
        path.unlink(missing_ok=True)


def rehash(db_path: Path, anchor: Path, edit_seq: int) -> None:
    """Change one entry's payload, then recompute every hash from there on so the chain verifies."""
    from datetime import UTC, datetime

    def statements(db: sqlite3.Connection) -> None:
        rows = db.execute(f"SELECT seq, at, kind, agreement, flow, logical_date, recipient, dedupe_key, payload "
                          f"FROM {TABLE} ORDER BY seq").fetchall()
        prev = GENESIS_HASH
        for seq, at, kind, agreement, flow, logical_date, recipient, dedupe_key, payload in rows:
            body = json.loads(payload)
            if seq == edit_seq:
                body["rewritten"] = True  # e.g. a row count made smaller
                payload = json.dumps(body, sort_keys=True, separators=(",", ":"))
            moment = datetime.fromisoformat(at).replace(tzinfo=UTC)
            content = {"seq": seq, "at": moment.isoformat(timespec="microseconds"), "kind": kind,
                       "agreement": agreement, "flow": flow, "logical_date": logical_date,
                       "recipient": recipient, "dedupe_key": dedupe_key, "payload": body}
            digest = chain_hash(prev, content)
            db.execute(f"UPDATE {TABLE} SET payload = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                       (payload, prev, digest, seq))
            prev = digest

    _edit(db_path, anchor, statements)
