"""The disclosure ledger: append-only, hash-chained, anchored outside itself.

Every disclosure, reconciliation, quality result, purge (and later every
share without consent and every notice) is one ``Entry``. Entries hold names,
counts, hashes, paths and fingerprints, never record values.

Tamper evidence comes in three layers, because each alone has a gap:

1. **Hash chain.** ``hash = sha256(prev_hash + canonical JSON of the entry)``,
   starting from 64 zeros, so editing any row breaks that row's hash and
   removing one breaks the next row's link.
2. **Triggers.** The table refuses ``UPDATE``/``DELETE`` (and ``TRUNCATE`` on
   PostgreSQL) at the database level, so a mistaken script cannot rewrite
   history. A database owner can drop them; ``verify`` reports that.
3. **Anchors.** A chain cut at the end still verifies, so after each append the
   head (seq + hash) is written to ``anchor_path``; the pipeline also puts
   ``head()`` into each delivery manifest, archived with the delivery. Whoever
   can rewrite the ledger can rewrite the file beside it, so an external anchor
   (``transfers.anchor``: a file on another volume, or a versioned S3 object whose
   history keeps every head) is written too. ``verify`` compares the table with
   all of them, and ``transfers ledger verify`` passes it every archived
   manifest's head: a ledger cut short, emptied, deleted or rehashed no longer
   reaches, or no longer matches, the heads recorded outside it.

Appends are serialised across processes (``BEGIN IMMEDIATE`` on SQLite, a
transaction-level advisory lock on PostgreSQL), so ``seq`` is gapless even when
several Airflow tasks record at once.

Example:
    ledger = Ledger("sqlite:///var/ledger.db", anchor_path=Path("var/ledger.head"))
    entry, created = ledger.append("disclosure", agreement="mash", flow="mash/a",
                                   dedupe_key="disclosure:mash/a:2024-05-01:syp",
                                   payload={"rows": 40})
    ledger.verify().raise_if_failed()
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url

from transfers.errors import ConfigError, LedgerTampered, LedgerUnavailable
from transfers.logs import get_logger

log = get_logger(__name__)

GENESIS_HASH = "0" * 64
DEFAULT_TABLE = "ledger_entries"
#: Payloads are summaries; a larger one almost certainly carries data it must not.
MAX_PAYLOAD_BYTES = 256 * 1024
#: How long an append waits for another process's append before giving up (retriable).
LOCK_TIMEOUT_SECONDS = 30
_PAGE = 1000
_MAX_PROBLEMS = 200
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_KIND = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_SECRET_QUERY_KEYS = re.compile(r"pass|secret|token|key", re.IGNORECASE)


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as stored.

    Attributes:
        seq: Position in the chain, from 1, without gaps.
        at: When it was recorded (timezone-aware, UTC).
        kind: ``disclosure``, ``quality``, ``purge``...
        agreement: Agreement id.
        flow: Flow key, if the entry concerns one flow.
        logical_date: The flow run's logical date, if any.
        recipient: Receiving partner, if any.
        dedupe_key: Unique key that makes a re-run record nothing new.
        payload: Small JSON object: names, counts, hashes, paths, fingerprints.
        prev_hash: ``hash`` of the entry before (64 zeros for the first).
        hash: sha256 over ``prev_hash`` and the canonical JSON of the fields above.
    """

    seq: int
    at: datetime
    kind: str
    agreement: str
    flow: str | None
    logical_date: date | None
    recipient: str | None
    dedupe_key: str | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        """The hash these contents must have; differs from ``hash`` if the row was edited."""
        return chain_hash(self.prev_hash, self._content())

    def _content(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": _iso(self.at),
            "kind": self.kind,
            "agreement": self.agreement,
            "flow": self.flow,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "recipient": self.recipient,
            "dedupe_key": self.dedupe_key,
            "payload": self.payload,
        }


@dataclass
class VerifyReport:
    """What ``Ledger.verify`` found.

    Attributes:
        checked: How many entries were read.
        problems: One line per problem, each naming the entry seq or the anchor.
        head: The last entry read, if any.
    """

    checked: int = 0
    problems: list[str] = field(default_factory=list)
    head: Entry | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_if_failed(self) -> None:
        """Raise ``LedgerTampered`` listing the problems, if there are any."""
        if self.problems:
            raise LedgerTampered("ledger does not verify:\n" + "\n".join(f"  - {p}" for p in self.problems))


def canonical_json(value: Any) -> str:
    """The one serialisation hashes are computed over (and payloads stored as)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_json(content)).encode("ascii")).hexdigest()


def mask_url(url: str) -> str:
    """``url`` fit for an error message: password (and secret-looking query values) replaced."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - unparsable: fall back to a textual mask
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    query = {k: ("***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in parsed.query.items()}
    return parsed.set(query=query).render_as_string(hide_password=True)


class Ledger:
    """The append-only ledger in one database table.

    Args:
        url: SQLAlchemy URL: ``sqlite:///path/ledger.db`` or ``postgresql+psycopg2://...``.
        anchor_path: File that holds the head (seq + hash) after each append; without it
            ``verify`` cannot tell a ledger cut short at the end.
        schema: PostgreSQL schema holding the table (it must exist); default the search path.
        table: Table name.
        external_anchor: A ``transfers.anchor`` anchor outside the ledger's host, written
            after each append and read by ``verify``.

    Raises:
        ConfigError: The URL is malformed, the dialect unsupported, or the schema missing.
        LedgerUnavailable: The database could not be reached.
    """

    def __init__(self, url: str, *, anchor_path: Path | None = None, schema: str | None = None,
                 table: str = DEFAULT_TABLE, external_anchor: Any = None) -> None:
        self.masked_url = mask_url(url)
        self.anchor_path = Path(anchor_path) if anchor_path is not None else None
        self.external_anchor = external_anchor
        for label, name in (("table", table), ("schema", schema)):
            if name is not None and not _NAME.match(name):
                raise ConfigError(f"ledger {self.masked_url}: {label} {name!r} is not a plain lower-case SQL name")
        self._engine = self._create_engine(url, schema)
        self._password = make_url(url).password
        self._qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
        self._schema, self._name = schema, table
        self._display = f"{schema}.{table}" if schema else table
        # Per table, so ledgers in different schemas (tests) do not wait for each other.
        digest = hashlib.sha256(f"isp-transfers-ledger:{schema or ''}.{table}".encode()).digest()
        self._lock_key = int.from_bytes(digest[:8], "big", signed=True)
        self.table = _define_table(table, schema)
        try:
            with self._errors("open"), self._writing() as conn:
                self._create(conn)
        except BaseException:
            self._engine.dispose()
            raise

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Ledger:
        """Same as ``Ledger(url, **kwargs)``."""
        return cls(url, **kwargs)

    def close(self) -> None:
        """Release the connection pool."""
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.masked_url!r}, table={self._display!r})"

    # ------------------------------------------------------------------ writing

    def append(self, kind: str, *, agreement: str, flow: str | None = None, logical_date: date | None = None,
               recipient: str | None = None, dedupe_key: str | None = None,
               payload: dict[str, Any] | None = None, at: datetime | None = None) -> tuple[Entry, bool]:
        """Record one entry at the end of the chain.

        Args:
            kind: What happened (``disclosure``, ``quality``, ``purge``...).
            agreement: Agreement id.
            flow: Flow key, if any.
            logical_date: Logical date of the flow run, if any.
            recipient: Receiving partner, if any.
            dedupe_key: If an entry with this key exists, nothing is written.
            payload: Small JSON-serialisable dict; names, counts, hashes, never record values.
            at: When it happened (timezone-aware); default now.

        Returns:
            ``(entry, created)``. ``created`` is False when ``dedupe_key`` was already
            recorded; ``entry`` is then the existing entry, so a re-run never records
            a disclosure twice.

        Raises:
            ValueError: An argument is malformed (naive ``at``, payload not JSON or too large).
            LedgerUnavailable: The database is down or another append held the lock too long.
        """
        if not _KIND.match(kind):
            raise ValueError(f"ledger entry kind {kind!r}: use lower-case letters, digits, '-' or '_'")
        if not agreement:
            raise ValueError(f"ledger entry {kind!r}: agreement is required")
        # Always UTC: SQLite keeps datetimes without an offset, so stored wall time must be UTC
        # for reads and range filters to mean the same thing on both databases.
        at = _utc(at or datetime.now(UTC), "at")
        if isinstance(logical_date, datetime):
            # A datetime would be cut to a date by the column and no longer match its hash.
            raise ValueError(f"ledger entry {kind!r}: logical_date must be a date, not a datetime "
                             f"({logical_date.isoformat()}); pass its .date()")
        payload = _normalise_payload(kind, payload)
        if dedupe_key is not None and (existing := self.find(dedupe_key)) is not None:
            return existing, False  # a re-run: answered without waiting for the write lock
        with self._errors("append to"), self._writing() as conn:
            if dedupe_key is not None:  # again under the lock: another process may have just recorded it
                existing = self._one(conn, self.table.c.dedupe_key == dedupe_key)
                if existing is not None:
                    return existing, False
            last = conn.execute(sa.select(self.table.c.seq, self.table.c.hash)
                                .order_by(self.table.c.seq.desc()).limit(1)).first()
            seq, prev_hash = (last.seq + 1, last.hash) if last else (1, GENESIS_HASH)
            draft = Entry(seq, at, kind, agreement, flow, logical_date, recipient, dedupe_key, payload,
                          prev_hash, "")
            entry = dataclasses.replace(draft, hash=draft.expected_hash())
            conn.execute(self.table.insert().values(
                seq=entry.seq, at=at, kind=kind, agreement=agreement, flow=flow,
                logical_date=logical_date, recipient=recipient, dedupe_key=dedupe_key,
                payload=payload, prev_hash=prev_hash, hash=entry.hash,
            ))
        # After the commit: an anchor must never name an entry that was rolled back.
        self._write_anchor(entry)
        return entry, True

    # ------------------------------------------------------------------ reading

    def find(self, dedupe_key: str) -> Entry | None:
        """The entry recorded under ``dedupe_key``, or None."""
        with self._errors("read"), self._engine.connect() as conn:
            return self._one(conn, self.table.c.dedupe_key == dedupe_key)

    def head(self) -> Entry | None:
        """The last entry (highest seq), or None for an empty ledger."""
        with self._errors("read"), self._engine.connect() as conn:
            row = conn.execute(sa.select(self.table).order_by(self.table.c.seq.desc()).limit(1)).first()
            return _entry(row) if row else None

    def entries(self, *, kind: str | None = None, agreement: str | None = None, flow: str | None = None,
                since: datetime | None = None, until: datetime | None = None) -> Iterator[Entry]:
        """Entries in seq order, matching every filter given.

        Read a page at a time, each in its own short transaction, so a long ledger
        is never held in memory and a slow consumer never blocks appends.

        Args:
            kind: Only this kind.
            agreement: Only this agreement id.
            flow: Only this flow key.
            since: Only entries recorded at or after this moment (timezone-aware).
            until: Only entries recorded before this moment (timezone-aware).
        """
        # Filters are checked now, not at the first next(); the reading is lazy.
        return self._pages(self._conditions(kind, agreement, flow, since, until))

    def latest(self, limit: int, *, kind: str | None = None, flow: str | None = None) -> list[Entry]:
        """The last ``limit`` entries matching the filters, in seq order, read with one bounded query.

        For a baseline of recent runs, which must not cost more as the ledger grows.
        """
        t = self.table
        with self._errors("read"), self._engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(*self._conditions(kind, None, flow, None, None))
                                .order_by(t.c.seq.desc()).limit(limit)).all()
        return [_entry(r) for r in reversed(rows)]

    def _conditions(self, kind: str | None, agreement: str | None, flow: str | None,
                    since: datetime | None, until: datetime | None) -> list[sa.ColumnElement[bool]]:
        t = self.table
        conditions = [column == value for column, value in ((t.c.kind, kind), (t.c.agreement, agreement),
                                                            (t.c.flow, flow)) if value is not None]
        if since is not None:
            conditions.append(t.c.at >= _utc(since, "since"))
        if until is not None:
            conditions.append(t.c.at < _utc(until, "until"))
        return conditions

    def verify(self, *, heads: Iterable[tuple] = ()) -> VerifyReport:
        """Recompute the chain and compare it with every head recorded outside it.

        Args:
            heads: Further ``(seq, hash)`` or ``(seq, hash, label, source)`` heads seen
                outside the ledger, for example the ``ledger_head`` of archived delivery
                manifests; each must still be in the chain. ``label`` names where it was
                read (problems quote it); one line is written per ``source``.

        Returns:
            A report; ``ok`` is False when any entry, link, anchor or trigger is wrong.
            Each problem names the entry seq (``entry 7: ...``) or the anchor.
        """
        report = VerifyReport()

        def problem(text: str) -> None:
            if len(report.problems) < _MAX_PROBLEMS:
                report.problems.append(text)
            elif len(report.problems) == _MAX_PROBLEMS:
                report.problems.append("... further problems not listed")

        # The anchor is read before the chain: an append during verify then only makes
        # the table longer than the anchor, which is fine, never shorter.
        anchor = self._read_anchor(problem)
        claims: dict[int, list[tuple[str, str, str]]] = {}  # seq -> [(hash, label, source)]
        if anchor is not None:
            claims.setdefault(anchor[0], []).append((anchor[1], "", "its anchor"))
        for seq, digest, *where in heads:
            label = where[0] if where else ""
            claims.setdefault(int(seq), []).append((str(digest), label, where[1] if len(where) > 1 else label))
        external = self._read_external(problem, claims)
        mismatched: dict[str, list[str]] = {}  # source -> problem lines, the first one shown
        with self._errors("verify"):
            for name in self._missing_guards():
                problem(f"append-only trigger {name} on {self._display} is missing or disabled "
                        f"(UPDATE/DELETE are no longer refused): investigate, then call install_guards()")
            prev: Entry | None = None
            for entry in self._pages([]):
                report.checked += 1
                want_seq = prev.seq + 1 if prev else 1
                if entry.seq != want_seq:
                    problem(f"entry {entry.seq}: follows entry {want_seq - 1}; entries {want_seq}..{entry.seq - 1} "
                            f"are missing (deleted?)")
                want_prev = prev.hash if prev else GENESIS_HASH
                if entry.prev_hash != want_prev:
                    problem(f"entry {entry.seq}: prev_hash does not link to the entry before it "
                            f"(an entry before it was removed, inserted or rewritten?)")
                if entry.hash != entry.expected_hash():
                    problem(f"entry {entry.seq}: hash does not match its contents (edited after it was written?)")
                for digest, label, source in claims.get(entry.seq, ()):
                    if digest != entry.hash:
                        where = f"the one in {label}" if label else "the one anchored outside the ledger"
                        mismatched.setdefault(source, []).append(
                            f"entry {entry.seq}: hash differs from {where} (the ledger was rewritten from here on?)")
                prev = entry
            report.head = prev
        for lines in mismatched.values():
            more = f" (and {len(lines) - 1} more head(s) from the same place)" if len(lines) > 1 else ""
            problem(lines[0] + more)
        last = prev.seq if prev else 0
        furthest: dict[str, tuple[int, str]] = {}  # source -> the highest head beyond the end
        for seq in sorted(s for s in claims if s > last):
            for _digest, label, source in claims[seq]:
                furthest[source or "a recorded head"] = (seq, label)
        for source, (seq, label) in furthest.items():
            problem(f"ledger ends at entry {last} but {label or source} says {seq} (entries cut off the end?)")
        if external is not None and not external and last:
            problem(f"{self.external_anchor.name} holds no head but the ledger has {last} entries "
                    f"(deleted, or never written: check the anchor's place and the append log)")
        return report

    # ------------------------------------------------------------------ guards

    def install_guards(self) -> None:
        """(Re)install the triggers that refuse UPDATE/DELETE/TRUNCATE. Idempotent.

        Called when the table is created. A missing trigger is reported by ``verify``
        rather than quietly reinstalled on open, so its removal is not hidden.
        """
        with self._errors("install triggers on"), self._writing() as conn:
            self._install_guards(conn)

    def _guard_names(self) -> list[str]:
        if self._engine.dialect.name == "sqlite":
            return [f"{self._name}_no_update", f"{self._name}_no_delete"]
        return [f"{self._name}_no_update_delete", f"{self._name}_no_truncate"]

    def _install_guards(self, conn: Connection) -> None:
        t, names = self._qualified, self._guard_names()

        def run(sql: str) -> None:
            # text(), not exec_driver_sql(): psycopg2 would read RAISE's '%' as parameters.
            conn.execute(sa.text(sql))

        if self._engine.dialect.name == "sqlite":
            for name, op in zip(names, ("UPDATE", "DELETE"), strict=True):
                run(f'CREATE TRIGGER IF NOT EXISTS "{name}" BEFORE {op} ON {t} '
                    f"BEGIN SELECT RAISE(ABORT, 'ledger {self._name} is append-only: {op} refused'); END")
            return
        func = f'"{self._schema}"."{self._name}_append_only"' if self._schema else f'"{self._name}_append_only"'
        run(f"CREATE OR REPLACE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION 'ledger %.% is append-only: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP "
            f"USING ERRCODE = 'restrict_violation'; END $$")
        run(f'CREATE OR REPLACE TRIGGER "{names[0]}" BEFORE UPDATE OR DELETE ON {t} '
            f"FOR EACH ROW EXECUTE FUNCTION {func}()")
        run(f'CREATE OR REPLACE TRIGGER "{names[1]}" BEFORE TRUNCATE ON {t} '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {func}()")
        # CREATE OR REPLACE keeps a trigger's disabled state; make sure they fire.
        for name in names:
            run(f'ALTER TABLE {t} ENABLE TRIGGER "{name}"')

    def _missing_guards(self) -> list[str]:
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                rows = conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"),
                                    {"t": self._name})
            else:
                rows = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = to_regclass(:t) "
                                            "AND NOT tgisinternal AND tgenabled <> 'D'"), {"t": self._qualified})
            present = {r[0] for r in rows}
        return [n for n in self._guard_names() if n not in present]

    # ------------------------------------------------------------------ internals

    def _create_engine(self, url: str, schema: str | None) -> Engine:
        return database_engine(url, schema, masked_url=self.masked_url)

    def _create(self, conn: Connection) -> None:
        if self._schema is not None:
            found = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": self._schema}).first()
            if found is None:
                raise ConfigError(f"ledger {self.masked_url}: schema {self._schema!r} does not exist; create it first")
        if not sa.inspect(conn).has_table(self._name, schema=self._schema):
            self.table.create(conn)
            self._install_guards(conn)
            log.info("ledger created", ledger=self.masked_url, table=self._display)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction holding the ledger's write lock, so appends run one at a time."""
        with self._engine.connect() as conn:
            if self._engine.dialect.name == "sqlite":
                conn.execution_options(ledger_begin="BEGIN IMMEDIATE")
            with conn.begin():
                if self._engine.dialect.name == "postgresql":
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'")
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(self._lock_key)))
                yield conn

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn driver errors into ours, naming the ledger without its password."""
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0:1]
            text = reason[0] if reason else type(exc).__name__
            if self._password:
                text = text.replace(self._password, "***")
            raise LedgerUnavailable(f"cannot {action} ledger {self.masked_url}: {text}; "
                                    f"check the database is up and reachable, then retry") from None

    def _one(self, conn: Connection, condition: sa.ColumnElement[bool]) -> Entry | None:
        row = conn.execute(sa.select(self.table).where(condition)).first()
        return _entry(row) if row else None

    def _pages(self, conditions: list[sa.ColumnElement[bool]]) -> Iterator[Entry]:
        t, after = self.table, 0
        while True:
            with self._errors("read"), self._engine.connect() as conn:
                rows = conn.execute(sa.select(t).where(t.c.seq > after, *conditions)
                                    .order_by(t.c.seq).limit(_PAGE)).all()
            yield from (_entry(r) for r in rows)
            if len(rows) < _PAGE:
                return
            after = rows[-1].seq

    def _read_anchor(self, problem: Any) -> tuple[int, str] | None:
        if self.anchor_path is None:
            return None
        try:
            data = json.loads(self.anchor_path.read_text())
            return int(data["seq"]), str(data["hash"])
        except FileNotFoundError:
            with self._errors("read"), self._engine.connect() as conn:
                count = conn.execute(sa.select(sa.func.count()).select_from(self.table)).scalar_one()
            if count:
                problem(f"anchor {self.anchor_path} is missing but the ledger has {count} entries (deleted?)")
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem(f"anchor {self.anchor_path} is unreadable ({type(exc).__name__}): it is written atomically, "
                    f"so it was changed by hand")
            return None

    def _read_external(self, problem: Any, claims: dict[int, list[tuple[str, str, str]]]) -> list | None:
        """Add the external anchor's heads to ``claims``; None when there is no external anchor."""
        if self.external_anchor is None:
            return None
        found = self.external_anchor.heads(problem)
        for seq, digest, label, source in found:
            claims.setdefault(seq, []).append((digest, label, source))
        return found

    def _write_anchor(self, entry: Entry) -> None:
        """Record ``entry`` as the head beside the ledger, then in the external anchor.

        Atomic, and never moving the local file backwards (see ``write_head_file``).
        A failure is logged, not raised: the entry is committed, and an anchor left
        behind is only a problem if the table ends before it.
        """
        from transfers.anchor import write_head_file

        head = {"seq": entry.seq, "hash": entry.hash, "table": self._display, "at": _iso(entry.at)}
        if self.anchor_path is not None:
            try:
                write_head_file(self.anchor_path, head)
            except OSError as exc:
                log.error("ledger anchor not written", anchor=str(self.anchor_path), seq=entry.seq,
                          error=exc.strerror or str(exc))
        if self.external_anchor is not None:
            try:
                self.external_anchor.write(head)
            except Exception as exc:  # noqa: BLE001 - OSError or any boto3 error: logged, the entry stands
                log.error("external ledger anchor not written", anchor=self.external_anchor.name, seq=entry.seq,
                          error=type(exc).__name__)


def database_engine(url: str, schema: str | None = None, *, masked_url: str | None = None) -> Engine:
    """An engine for the ledger's database (also used by the run locks beside it)."""
    masked = masked_url or mask_url(url)
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"ledger URL {masked!r} is not a valid SQLAlchemy URL ({exc})") from None
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        if schema is not None:
            raise ConfigError(f"ledger {masked}: schema= is only for PostgreSQL")
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            folder = Path(database).resolve().parent
            if not folder.is_dir():
                raise ConfigError(f"ledger {masked}: folder {folder} does not exist; create it first")
        engine = sa.create_engine(parsed, json_serializer=canonical_json,
                                  connect_args={"timeout": LOCK_TIMEOUT_SECONDS})
        # pysqlite's own transaction handling starts transactions late and cannot take
        # the write lock up front; switch it off and emit BEGIN ourselves.
        sa.event.listen(engine, "connect", _sqlite_autocommit)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if dialect == "postgresql":
        if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg") is None:
            # SQLAlchemy 2.1 means psycopg 3 by a bare postgresql://; psycopg2 is what we ship.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        try:
            # READ COMMITTED matters: each statement after the lock must see the
            # previous holder's row, which a REPEATABLE READ snapshot would not.
            return sa.create_engine(parsed, json_serializer=canonical_json, isolation_level="READ COMMITTED",
                                    pool_pre_ping=True, connect_args={"connect_timeout": 10,
                                                                      "application_name": "isp-transfers-ledger"})
        except (ImportError, sa.exc.NoSuchModuleError) as exc:
            raise ConfigError(f"ledger URL {masked}: driver not available ({exc})") from None
    raise ConfigError(f"ledger URL {masked}: {dialect!r} is not supported; use sqlite or postgresql")


def _define_table(name: str, schema: str | None) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        # INTEGER (not BIGINT) on SQLite so seq is the rowid: no hidden second key.
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("agreement", sa.String(200), nullable=False),
        sa.Column("flow", sa.String(200)),
        sa.Column("logical_date", sa.Date()),
        sa.Column("recipient", sa.String(200)),
        sa.Column("dedupe_key", sa.String(1000)),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("dedupe_key", name=f"uq_{name}_dedupe_key"),
        sa.Index(f"ix_{name}_kind_flow", "kind", "flow", "seq"),
        sa.Index(f"ix_{name}_at", "at"),
        schema=schema,
    )


def _sqlite_autocommit(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE takes the write lock before reading the head, so two processes
    # cannot both read seq N and both write N+1; the busy timeout makes the second wait.
    conn.exec_driver_sql(conn.get_execution_options().get("ledger_begin", "BEGIN"))


def _utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"ledger: {name}={moment.isoformat()} has no timezone; pass an aware datetime (UTC)")
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _normalise_payload(kind: str, payload: dict[str, Any] | None) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ValueError(f"ledger entry {kind!r}: payload must be a dict, not {type(payload).__name__}")
    try:
        text = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ledger entry {kind!r}: payload is not plain JSON ({exc})") from None
    if len(text) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"ledger entry {kind!r}: payload is {len(text)} bytes (limit {MAX_PAYLOAD_BYTES}); "
                         f"record counts and hashes, not data")
    # Round-trip so the returned entry equals what a later read returns (tuples -> lists, keys -> str).
    return json.loads(text)


def _entry(row: sa.Row[Any]) -> Entry:
    at = row.at
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload)
    return Entry(row.seq, at, row.kind, row.agreement, row.flow, row.logical_date, row.recipient, row.dedupe_key,
                 payload, row.prev_hash, row.hash)
