"""Each alert sent once, whichever worker's task sends it: a claim row per alert in the ledger's database.

Two failing tasks of one DAG run, the failure callback and an incident's own notice, the daily alerts of a
retried retention run: each races to send the same message. The first to insert the alert's key sends it;
the others find the row and send nothing. The claims live beside the run locks in the ledger's database,
because with several workers (a CeleryExecutor) no folder is seen by all of them (a marker file in one
worker's home let every worker send its own copy). A claim holds the key's hash and when it was claimed,
no data; claims older than ``KEEP_DAYS`` are deleted as new ones are made, since no key is claimed again
after so long (each names a DAG run, an incident or a day), so the table stays small.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

__all__ = ["KEEP_DAYS", "TABLE", "claim_once", "release_claim"]

TABLE = "alert_claims"
#: Claims are kept this long, then deleted: far longer than any DAG run (under a day) or its retries.
KEEP_DAYS = 90

#: The advisory lock PostgreSQL creators of the table take in turn (any fixed 64-bit number).
_CREATE_LOCK = int.from_bytes(hashlib.sha256(b"transfers alert claims table").digest()[:8], "big", signed=True)

_table = sa.Table(
    TABLE, sa.MetaData(),
    # Hashed: a key (a DAG run id, an incident's notice key) may be long; the hash is all a claim needs.
    sa.Column("key_sha256", sa.String(64), primary_key=True),
    sa.Column("claimed_at", sa.String(40), nullable=False),
)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _engine(url: str) -> sa.Engine:
    from transfers.ledger import database_engine

    engine = database_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                # Workers' first claims take turns creating the table: at the same moment, both would find it
                # missing and the second create would fail on a duplicate table.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
            _table.create(conn, checkfirst=True)
    except BaseException:
        engine.dispose()
        raise
    return engine


def claim_once(url: str, key: str, *, now: datetime | None = None) -> bool:
    """True the first time ``key`` is claimed in the database at ``url`` (by any process on any worker), False ever
    after (until released, or ``KEEP_DAYS`` later)."""
    now = now or datetime.now(UTC)
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(_table.delete().where(_table.c.claimed_at < (now - timedelta(days=KEEP_DAYS)).isoformat()))
        try:
            with engine.begin() as conn:
                conn.execute(_table.insert().values(key_sha256=_digest(key), claimed_at=now.isoformat()))
        except sa.exc.IntegrityError:
            return False
        return True
    finally:
        engine.dispose()


def release_claim(url: str, key: str) -> None:
    """Undo ``claim_once`` (the message could not be sent), so the next attempt sends it."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(_table.delete().where(_table.c.key_sha256 == _digest(key)))
    finally:
        engine.dispose()
