"""One run per (flow, logical date) at a time: a lock held for the whole run.

Two runs of the same pair would share one working directory, one outbox and one
remote file name: the second would clear the first's staging files under it. So
a run holds a lock row in ``run_locks``, in the ledger's own database (every
worker that can record a disclosure can see it), keyed by (flow, logical date)
and naming its owner, host, pid, start and last heartbeat.

Owners:

* ``cli:<host>:<pid>:<nonce>``, a ``transfers run``: takes the row at the start,
  refreshes its heartbeat from a thread, releases it at the end. On PostgreSQL it
  also holds a session advisory lock on the pair for its whole life, which the
  server drops the moment the process dies; on SQLite a dead pid on the same
  host says the same. Either way a killed CLI run is taken over at once.
* ``dag:<dag id>:<run id>``, an Airflow DAG run: its tasks are separate processes,
  so the first task takes the row, each later task joins it (same owner) and
  refreshes it while it works, and the cleanup teardown releases it. Only the
  heartbeat tells a killed DAG run: a row not refreshed for ``ttl`` seconds is
  stale and the next run takes it over, saying whose it was.

``transfers unlock FLOW --date D`` removes a row by hand, after checking
that its run is really gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from transfers.errors import RunLocked
from transfers.logs import get_logger

log = get_logger(__name__)

TABLE = "run_locks"
#: A lock whose heartbeat is older than this is stale (its run was killed).
DEFAULT_TTL_SECONDS = 3600
#: How often a holder refreshes its heartbeat, as a fraction of the ttl.
_BEAT_FRACTION = 6
_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Holder:
    """Who holds the lock of one (flow, logical date)."""

    flow: str
    ds: str
    owner: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    ttl: int

    @property
    def expires_at(self) -> datetime:
        return self.heartbeat_at + timedelta(seconds=self.ttl)

    @property
    def is_cli(self) -> bool:
        return self.owner.startswith("cli:")

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at

    def describe(self) -> str:
        """``cli run pid 42 on host h`` or ``DAG run <dag>:<run id>, pid 42 on host h``."""
        if self.is_cli:
            return f"cli run pid {self.pid} on host {self.host}"
        return f"DAG run {self.owner.removeprefix('dag:')}, last task pid {self.pid} on host {self.host}"


def cli_owner() -> str:
    """A fresh owner name for one ``transfers run`` process."""
    return f"cli:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dag_owner(dag_id: str, run_id: str) -> str:
    """The owner name every task of one DAG run shares."""
    return f"dag:{dag_id}:{run_id}"


def _fmt(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def locked_error(holder: Holder | None, flow: str, ds: str) -> RunLocked:
    if holder is None:  # taken a moment ago, row not yet written
        return RunLocked(f"flow {flow} on {ds} is already running (just starting); nothing was done",
                         flow=flow, ds=ds)
    return RunLocked(
        f"flow {flow} on {ds} is already running since {_fmt(holder.started_at)} ({holder.describe()}); "
        f"nothing was done. Let it finish, or wait for it with `transfers run --wait SECONDS`. If that run was "
        f"killed, its lock goes stale at {_fmt(holder.expires_at)}, or remove it now with "
        f"`transfers unlock {flow} --date {ds}`", flow=flow, ds=ds, holder=holder)


class RunLocks:
    """The ``run_locks`` table in the ledger's database.

    Args:
        url: The ledger's SQLAlchemy URL (SQLite or PostgreSQL).
        ttl: Seconds without a heartbeat after which a lock is stale.
    """

    def __init__(self, url: str, *, ttl: int = DEFAULT_TTL_SECONDS) -> None:
        from transfers.ledger import database_engine, mask_url

        self.ttl = ttl
        self.masked_url = mask_url(url)
        # The ledger's engine settings (BEGIN IMMEDIATE on SQLite, READ COMMITTED and
        # timeouts on PostgreSQL) are exactly what the lock needs.
        self._engine = database_engine(url)
        self._pg = self._engine.dialect.name == "postgresql"
        self.table = sa.Table(
            TABLE, sa.MetaData(),
            sa.Column("flow", sa.String(200), primary_key=True),
            sa.Column("logical_date", sa.String(10), primary_key=True),
            sa.Column("owner", sa.String(300), nullable=False),
            sa.Column("host", sa.String(255), nullable=False),
            sa.Column("pid", sa.Integer, nullable=False),
            sa.Column("started_at", sa.String(40), nullable=False),
            sa.Column("heartbeat_at", sa.String(40), nullable=False),
            sa.Column("ttl_seconds", sa.Integer, nullable=False),
        )
        # PostgreSQL: the connection holding a CLI run's advisory lock (one pair per instance).
        self._session: Connection | None = None
        with self._begin("<create>", "") as conn:  # serialised: several processes may race to create it
            self.table.create(conn, checkfirst=True)

    def close(self) -> None:
        self._drop_session_lock()
        self._engine.dispose()

    # ------------------------------------------------------------------ public

    def holder(self, flow: str, ds: str) -> Holder | None:
        with self._engine.connect() as conn:
            return self._read(conn, flow, ds)

    def acquire(self, flow: str, ds: str, owner: str) -> Holder | None:
        """Take (or, for the same owner, refresh) the lock of (flow, ds).

        Returns:
            The stale holder that was taken over, or None.

        Raises:
            RunLocked: Another live run holds it.
        """
        cli = owner.startswith("cli:")
        if cli and self._pg and self._session is None:
            # Before the row: a live CLI holder keeps this lock, so failing to get it
            # means it is alive; getting it means any CLI row left is from a dead process.
            session = self._engine.connect()
            got = session.execute(sa.select(sa.func.pg_try_advisory_lock(self._key(flow, ds)))).scalar_one()
            session.commit()
            if not got:
                session.close()
                raise locked_error(self.holder(flow, ds), flow, ds)
            self._session = session
        try:
            with self._begin(flow, ds) as conn:
                current = self._read(conn, flow, ds)
                now = datetime.now(UTC)
                stale = None
                if current is not None and current.owner != owner:
                    if not (current.expired(now) or self._dead(conn, current, we_hold_session=cli)):
                        raise locked_error(current, flow, ds)
                    stale = current
                values = {"owner": owner, "host": socket.gethostname(), "pid": os.getpid(),
                          "heartbeat_at": _iso(now), "ttl_seconds": self.ttl}
                if current is None:
                    conn.execute(self.table.insert().values(flow=flow, logical_date=ds, started_at=_iso(now),
                                                            **values))
                else:
                    if stale is not None:
                        values["started_at"] = _iso(now)
                    conn.execute(self.table.update().where(*self._where(flow, ds)).values(**values))
        except BaseException:
            if cli:
                self._drop_session_lock()
            raise
        if stale is not None:
            log.warning("stale run lock taken over", flow=flow, logical_date=ds, previous=stale.describe(),
                        since=_iso(stale.started_at), last_heartbeat=_iso(stale.heartbeat_at))
        return stale

    def refresh(self, flow: str, ds: str, owner: str) -> bool:
        """Move the heartbeat on; False if the lock is no longer ``owner``'s."""
        with self._begin() as conn:
            result = conn.execute(self.table.update().where(*self._where(flow, ds), self.table.c.owner == owner)
                                  .values(heartbeat_at=_iso(datetime.now(UTC)), pid=os.getpid()))
            return result.rowcount == 1

    def release(self, flow: str, ds: str, owner: str | None) -> bool:
        """Remove the lock if ``owner`` holds it (any holder when ``owner`` is None)."""
        try:
            with self._begin(flow, ds) as conn:
                condition = [*self._where(flow, ds)] + ([self.table.c.owner == owner] if owner else [])
                return conn.execute(self.table.delete().where(*condition)).rowcount == 1
        finally:
            if owner is None or owner.startswith("cli:"):
                self._drop_session_lock()

    def alive(self, holder: Holder) -> bool:
        """Whether the holder's run may still be going (not expired, not provably dead)."""
        with self._begin(holder.flow, holder.ds) as conn:
            return not (holder.expired(datetime.now(UTC)) or self._dead(conn, holder, we_hold_session=False))

    # ------------------------------------------------------------------ internals

    def _key(self, flow: str, ds: str, space: str = "run") -> int:
        digest = hashlib.sha256(f"isp-transfers-{space}-lock:{flow}:{ds}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def _where(self, flow: str, ds: str) -> list[sa.ColumnElement[bool]]:
        return [self.table.c.flow == flow, self.table.c.logical_date == ds]

    @contextlib.contextmanager
    def _begin(self, flow: str | None = None, ds: str | None = None) -> Iterator[Connection]:
        """A transaction in which reading and writing the row cannot interleave with another's."""
        try:
            with self._engine.connect() as conn:
                if not self._pg:
                    conn.execution_options(ledger_begin="BEGIN IMMEDIATE")
                with conn.begin():
                    if self._pg and flow is not None:
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._key(flow, ds or "", "row"))))
                    yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            from transfers.errors import LedgerUnavailable

            raise LedgerUnavailable(f"cannot read or write the run lock in {self.masked_url} "
                                    f"({type(getattr(exc, 'orig', exc)).__name__}); check the database is up, "
                                    f"then retry") from None

    def _read(self, conn: Connection, flow: str, ds: str) -> Holder | None:
        row = conn.execute(sa.select(self.table).where(*self._where(flow, ds))).first()
        if row is None:
            return None
        return Holder(row.flow, row.logical_date, row.owner, row.host, row.pid,
                      datetime.fromisoformat(row.started_at), datetime.fromisoformat(row.heartbeat_at),
                      row.ttl_seconds)

    def _dead(self, conn: Connection, holder: Holder, *, we_hold_session: bool) -> bool:
        """A CLI holder whose process is provably gone; a DAG run is only ever stale by its heartbeat."""
        if not holder.is_cli:
            return False
        if self._pg:
            if we_hold_session:
                return True  # we got the advisory lock its live process would hold
            return bool(conn.execute(sa.select(
                sa.func.pg_try_advisory_xact_lock(self._key(holder.flow, holder.ds)))).scalar_one())
        if holder.host != socket.gethostname():
            return False
        try:
            os.kill(holder.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def _drop_session_lock(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                # Explicitly: close() only hands the connection back to the pool, lock and all.
                session.execute(sa.select(sa.func.pg_advisory_unlock_all()))
                session.commit()
            with contextlib.suppress(Exception):
                session.close()


class _Heartbeat:
    """Refreshes a held lock from a daemon thread so a long step does not look stale."""

    def __init__(self, locks: RunLocks, flow: str, ds: str, owner: str) -> None:
        self._stop = threading.Event()
        self._args = (flow, ds, owner)
        self._locks = locks
        self._thread = threading.Thread(target=self._beat, name=f"run-lock {flow} {ds}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        interval = max(1.0, self._locks.ttl / _BEAT_FRACTION)
        while not self._stop.wait(interval):
            try:
                if not self._locks.refresh(*self._args):
                    log.error("run lock lost: another run took it over", flow=self._args[0],
                              logical_date=self._args[1])
                    return
            except Exception as exc:  # a missed beat is retried; the run goes on
                log.warning("run lock heartbeat failed", flow=self._args[0], error=type(exc).__name__)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class Held:
    """What ``hold`` yields: the owner name, and whose stale lock was taken over (if any)."""

    owner: str
    took_over: Holder | None = None


def _acquire_waiting(locks: RunLocks, flow: str, ds: str, owner: str, wait: float) -> Holder | None:
    deadline = time.monotonic() + max(0.0, wait)
    announced = False
    while True:
        try:
            return locks.acquire(flow, ds, owner)
        except RunLocked:
            if time.monotonic() >= deadline:
                raise
            if not announced:
                log.info("waiting for the run lock", flow=flow, logical_date=ds, wait_seconds=wait)
                announced = True
            time.sleep(min(_POLL_SECONDS, max(0.05, deadline - time.monotonic())))


@contextlib.contextmanager
def hold(url: str, flow: str, ds: str, owner: str, *, wait: float = 0, release: bool = True,
         release_on_error: bool = True, ttl: int = DEFAULT_TTL_SECONDS,
         locks: RunLocks | None = None) -> Iterator[Held]:
    """Hold the lock of (flow, ds) for the block, refreshing its heartbeat meanwhile.

    Args:
        url: The ledger's database URL.
        flow: Flow key (``agreement.flow``).
        ds: Logical date, ``YYYY-MM-DD``.
        owner: ``cli_owner()`` or ``dag_owner(...)``; the same owner re-enters freely.
        wait: Seconds to wait for another run to finish before giving up.
        release: Remove the lock when the block ends (a CLI run; a DAG's cleanup).
        release_on_error: Remove it also when the block raises (False for a DAG task
            other than the first: its run goes on to a retry and to its cleanup).
        ttl: Seconds without a heartbeat after which the lock is stale.

    Raises:
        RunLocked: Another live run held it for longer than ``wait``; nothing was done.
    """
    own = locks is None
    locks = locks or RunLocks(url, ttl=ttl)
    try:
        took_over = _acquire_waiting(locks, flow, ds, owner, wait)
        beat = _Heartbeat(locks, flow, ds, owner)
        failed = False
        try:
            yield Held(owner, took_over)
        except BaseException:
            failed = True
            raise
        finally:
            beat.stop()
            if release or (failed and release_on_error):
                try:
                    locks.release(flow, ds, owner)
                except Exception as exc:  # the run's own outcome matters more
                    log.error("run lock not released; it goes stale after its ttl", flow=flow, logical_date=ds,
                              error=type(exc).__name__)
    finally:
        if own:
            locks.close()
