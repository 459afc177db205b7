"""Which subjects each disclosure, exclusion and notice concerned, by pseudonym only.

Kept in a table beside the ledger (same database) so ledger payloads stay
small: a disclosure's ledger entry carries the count and a SHA-256 over the
sorted pseudonyms, which ties this table's rows to the hash chain.

Each subject is held as two keyed values, never the identifier:

* ``lookup``: the subject under a local lookup key that never leaves the
  sender and does not change when the sharing key rotates, so IG can find a
  person's whole history (``transfers subject history``);
* ``pseudonym``: the pseudonym the recipient was sent (under ``key_id``), so a
  withdrawal or correction notice names the subject the way that recipient knows.

Both are stored compactly (a 16-byte lookup token, the raw pseudonym digest), once per
subject and key, and each event names a set of subject ids: see
:mod:`transfers.privacy.register` for the tables and :mod:`transfers.privacy.members` for
the forms. A prepare step writes its subjects once; each recipient's disclosure then
points at that set, so nothing is copied per recipient or deleted after. Events are
only added; recording the same subjects for the same event and reference again adds nothing.

``subject_withdrawals`` is the sender's withdrawals register: the lookups of the
subjects ``transfers consent withdraw`` was told of, per agreement, which every
run of the agreement's flows excludes on top of the source's own consent register.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from transfers.ledger.records import Disclosure, Withdrawal
from transfers.ledger.store import LOCK_TIMEOUT_SECONDS
from transfers.privacy import members, register
from transfers.privacy.pseudonyms import derive_key, pseudonymise

if TYPE_CHECKING:
    from transfers.ledger import Ledger

_LOOKUP_KEY_ID = "local-lookup"


def lookup_key(secret: str | bytes, agreement_id: str) -> bytes:
    """The sender-only key under which a subject is found again, whatever the sharing key id."""
    return derive_key(secret, domain=f"lookup/{agreement_id}", key_id=_LOOKUP_KEY_ID)


def lookup_of(identifier: str, key: bytes) -> str:
    return pseudonymise(identifier, key)


@dataclass(frozen=True)
class SubjectEvent:
    at: datetime
    event: str  # disclosed | excluded | prepared | notice | withdrawn
    agreement: str
    flow: str | None
    logical_date: date | None
    recipient: str | None
    pseudonym: str | None
    key_id: str | None
    detail: str | None
    ref: str


def _define_seals(metadata: sa.MetaData) -> sa.Table:
    # Which prepare step's subjects a recipient's sealed outbox holds (the outbox outlives the run).
    return sa.Table(
        "subject_seals",
        metadata,
        sa.Column("outbox", sa.String(500), primary_key=True),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def _define_withdrawals(metadata: sa.MetaData) -> sa.Table:
    # The sender's own withdrawals register: every subject `transfers consent withdraw` was told of,
    # by agreement and lookup. Every run of the agreement's flows excludes them, whatever the
    # source's register says, so a notified withdrawal is never undone by a stale export.
    return sa.Table(
        WITHDRAWALS,
        metadata,
        sa.Column("agreement", sa.String(200), primary_key=True),
        sa.Column("lookup", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


WITHDRAWALS = "subject_withdrawals"

#: The advisory lock PostgreSQL creators of the register's tables take in turn (any fixed 64-bit number).
_CREATE_LOCK = int.from_bytes(hashlib.sha256(b"transfers subject register tables").digest()[:8], "big", signed=True)


def _create_tables(engine: sa.Engine, metadata: sa.MetaData) -> None:
    """The register's tables, made once however many workers open it first at the same moment.

    On a fresh PostgreSQL ledger two first ``prepare_part`` tasks on two workers both found the tables missing
    and both created them; the second failed on a duplicate table. Creators now take turns under a
    transaction-scoped advisory lock, so the second finds the first's tables. SQLite serialises DDL itself.
    """
    if engine.dialect.name != "postgresql":
        metadata.create_all(engine, checkfirst=True)
        return
    with engine.begin() as conn:
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CREATE_LOCK)))
        metadata.create_all(conn, checkfirst=True)


class SubjectIndex:
    """The subject register (headers, pseudonyms, member sets), seals and withdrawals, in the ledger's database."""

    def __init__(self, url: str) -> None:
        sqlite = url.startswith("sqlite")
        # SQLite: wait as long as a ledger append does for another step's write (a batch of new subjects).
        self.engine = sa.create_engine(url, connect_args={"timeout": LOCK_TIMEOUT_SECONDS} if sqlite else {})
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_cache)
        metadata = sa.MetaData()
        self.headers, self.subjects, self.members = register.define(metadata)
        self.seals = _define_seals(metadata)
        self.withdrawals = _define_withdrawals(metadata)
        _create_tables(self.engine, metadata)
        register.migrate_legacy(self.engine, self._write)

    def record_withdrawal(self, agreement: str, lookup: str) -> bool:
        """Put a subject in the agreement's withdrawals register; False if it was already there.

        The register row and the subject's ``withdrawn`` event are written in one
        transaction, so ``subject history`` shows every withdrawal the runs apply.
        """
        now = datetime.now(UTC)
        w = self.withdrawals
        try:
            with self.engine.begin() as conn:
                known = conn.execute(sa.select(w.c.at).where(w.c.agreement == agreement,
                                                             w.c.lookup == lookup)).first()
                if known is not None:
                    return False
                conn.execute(sa.insert(w).values(agreement=agreement, lookup=lookup, at=now))
                fields = {"event": "withdrawn", "agreement": agreement, "detail": "recorded in the withdrawals register",
                          "ref": f"withdrawal:{agreement}"}
                self._write(conn, fields, [members.token(lookup)], [b""], now, occasion=lookup)
        except sa.exc.IntegrityError:
            return False  # recorded at the same moment by another withdraw of the same subject
        return True

    def withdrawn(self, agreement: str) -> set[str]:
        """The lookups of every subject in the agreement's withdrawals register."""
        w = self.withdrawals
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(w.c.lookup).where(w.c.agreement == agreement)).scalars())

    def seal(self, outbox: str, ref: str | None) -> None:
        """Say which prepared subjects ``outbox`` holds (None: none recorded), replacing an unsealed attempt's."""
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.seals).where(self.seals.c.outbox == outbox))
            if ref:
                conn.execute(sa.insert(self.seals).values(outbox=outbox, ref=ref, at=datetime.now(UTC)))

    def sealed(self, outbox: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.seals.c.ref).where(self.seals.c.outbox == outbox)).scalar()

    @classmethod
    def for_settings(cls, settings: Any) -> SubjectIndex:
        settings.home.mkdir(parents=True, exist_ok=True)
        return cls(settings.ledger_database)

    def close(self) -> None:
        self.engine.dispose()

    def _write(self, conn: sa.Connection, fields: dict[str, Any], tokens: list[bytes], pseudonyms: list[bytes],
               at: datetime | None, *, occasion: str | None = None) -> None:
        header_id = register.header(conn, self.headers, fields, at=at or datetime.now(UTC), occasion=occasion)
        register.add_members(conn, self.members, header_id, register.subject_ids(conn, tokens, pseudonyms))

    def record(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add events (each a dict of the header fields, ``lookup`` and ``pseudonym``; ``at`` defaults to now)."""
        groups: dict[tuple, tuple[list[bytes], list[bytes]]] = {}
        for row in rows:
            fields = tuple(row.get(name) for name in register.HEADER_FIELDS)
            tokens, pseudonyms = groups.setdefault(fields, ([], []))
            tokens.append(members.token(row["lookup"]))
            pseudonyms.append(members.encode_pseudonym(row.get("pseudonym")))
        if groups:
            now = datetime.now(UTC)
            with self.engine.begin() as conn:
                for fields, (tokens, pseudonyms) in groups.items():
                    self._write(conn, dict(zip(register.HEADER_FIELDS, fields, strict=True)), tokens, pseudonyms, now)

    def copy_prepared(self, prepared_ref: str, *, disclosure_ref: str, recipient: str) -> None:
        """Make one prepare step's subjects the disclosure to ``recipient``: a header that points at them."""
        h = self.headers
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            prepared = conn.execute(sa.select(h).where(h.c.ref == prepared_ref, h.c.event == "prepared",
                                                       h.c.source.is_(None)).order_by(h.c.id)).all()
            for row in prepared:
                fields = {name: getattr(row, name) for name in register.HEADER_FIELDS}
                fields.update(event="disclosed", recipient=recipient, ref=disclosure_ref)
                register.header(conn, h, fields, at=now, source=row.id)

    def adopt_prepared(self, refs: list[str], ref: str) -> None:
        """Put the subjects of several prepare parts (their ``refs``) under one prepare step's ``ref``.

        Idempotent: a second call finds nothing left under ``refs``. A retried part's earlier attempt, under a
        ref not given here, is never adopted; :meth:`forget_prepared` drops it.
        """
        h = self.headers
        if refs:
            with self.engine.begin() as conn:
                conn.execute(sa.update(h).where(h.c.event == "prepared", h.c.source.is_(None), h.c.ref.in_(refs))
                             .values(ref=ref))

    def forget_prepared(self, flow_key: str, logical_date: date) -> int:
        """Drop the prepared sets of one (flow, date) that no disclosure points at; return their subjects.

        Those are attempts whose outbox was never delivered (a retry prepared again):
        they must never count as sent. A delivered attempt's set is the disclosure itself.
        """
        h, m = self.headers, self.members
        prefix = prepared_prefix(flow_key, logical_date.isoformat())
        with self.engine.begin() as conn:
            used = sa.select(h.c.source).where(h.c.source.is_not(None))
            gone = list(conn.execute(sa.select(h.c.id).where(
                h.c.event == "prepared", h.c.flow == flow_key, h.c.logical_date == logical_date,
                h.c.id.not_in(used))).scalars())
            removed = 0
            if gone:
                removed = members.count(conn.execute(sa.select(m.c.block, m.c.data).where(
                    m.c.header_id.in_(gone))))
                conn.execute(sa.delete(m).where(m.c.header_id.in_(gone)))
                conn.execute(sa.delete(h).where(h.c.id.in_(gone)))
            conn.execute(sa.delete(self.seals).where(self.seals.c.ref.startswith(prefix, autoescape=True)))
        return removed

    def unsent(self, flow_key: str) -> int:
        """How many subjects the flow's prepared sets hold that no disclosure points at (yet)."""
        h, m = self.headers, self.members
        with self.engine.connect() as conn:
            used = sa.select(h.c.source).where(h.c.source.is_not(None))
            waiting = sa.select(h.c.id).where(h.c.event == "prepared", h.c.flow == flow_key, h.c.id.not_in(used))
            return members.count(conn.execute(sa.select(m.c.block, m.c.data).where(
                m.c.header_id.in_(waiting))))

    def pseudonyms(self, event: str, ref: str) -> list[str | None]:
        """The pseudonyms one event's subjects were recorded with, sorted (None first)."""
        with self.engine.begin() as conn:
            return [members.decode_pseudonym(p) for chunk in self._stored(conn, event, ref, ordered=True)
                    for p in chunk]

    def _stored(self, conn: sa.Connection, event: str, ref: str, *, ordered: bool) -> Iterable[list[bytes]]:
        h, m = self.headers, self.members
        sets = sa.select(sa.func.coalesce(h.c.source, h.c.id)).where(h.c.event == event, h.c.ref == ref)
        rows = [(block, bytes(data)) for block, data in conn.execute(
            sa.select(m.c.block, m.c.data).where(m.c.header_id.in_(sets)))]
        return register.stored_pseudonyms(conn, rows, ordered=ordered)

    def digest(self, event: str, ref: str) -> dict[str, Any]:
        """Count and SHA-256 over the sorted pseudonyms of one event (for the ledger entry)."""
        digest, count = hashlib.sha256(), 0
        with self.engine.begin() as conn:
            for chunk in self._stored(conn, event, ref, ordered=True):
                register.hash_lines(digest, chunk)
                count += len(chunk)
        return {"subjects": count, "subjects_sha256": digest.hexdigest()}

    def events(self, lookups: Iterable[str], *, event: str | None = None) -> list[SubjectEvent]:
        """Every event about the given lookups (one person, under each agreement's lookup key), oldest first."""
        tokens = list({members.token(lookup) for lookup in lookups})
        if not tokens:
            return []
        h, s, m = self.headers, self.subjects, self.members
        with self.engine.connect() as conn:
            subjects = {sid: p for sid, p in conn.execute(sa.select(s.c.id, s.c.pseudonym).where(s.c.lookup.in_(tokens)))}
            if not subjects:
                return []
            blocks = {sid >> members.BITS for sid in subjects}
            held: dict[int, list[int]] = {}
            for header_id, block, data in conn.execute(sa.select(m.c.header_id, m.c.block, m.c.data).where(
                    m.c.block.in_(blocks))):
                for sid in subjects:
                    if members.holds(block, data, sid):
                        held.setdefault(header_id, []).append(sid)
            if not held:
                return []
            query = sa.select(h).where(sa.or_(h.c.id.in_(held), h.c.source.in_(held)), h.c.event != "prepared")
            if event is not None:
                query = query.where(h.c.event == event)
            rows = conn.execute(query.order_by(h.c.at, h.c.id)).all()
        return [
            SubjectEvent(_aware(r.at), r.event, r.agreement, r.flow, r.logical_date, r.recipient,
                         members.decode_pseudonym(subjects[sid]), r.key_id, r.detail, r.ref)
            for r in rows for sid in sorted(held[r.source if r.source is not None else r.id])
        ]


def _sqlite_cache(dbapi_connection: Any, _record: Any) -> None:
    # A night's subjects land all over the lookup index, and a disclosure's hash sorts them:
    # with SQLite's default 2 MB page cache both go to disk page by page. 64 MB is a fixed
    # ceiling, whatever the number of subjects.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA cache_size = -65536")
    # The same for the temporary tables a batch of subjects passes through (one batch at most);
    # they stay on disk past that, so memory does not grow with a batch.
    cursor.execute("PRAGMA temp.cache_size = -65536")
    cursor.close()


def prepared_prefix(flow_key: str, ds: str) -> str:
    """How every prepare step's reference for (flow, date) starts; its attempt's id follows."""
    return f"prepared:{flow_key}:{ds}:"


def verify_subjects(ledger: Ledger, index: SubjectIndex) -> tuple[int, list[str]]:
    """Check every disclosure's recorded subjects against the count and hash in its ledger entry,
    and every withdrawal in the ledger against the withdrawals register.

    The tables are not hash-chained themselves; this is what makes a removed, added or
    altered row show. Returns the number of disclosures checked and the problems found.
    """
    checked, problems = 0, []
    for disclosure in ledger.records(Disclosure):
        key = disclosure.entry.dedupe_key if disclosure.entry else None
        if not disclosure.subjects or not key:
            continue
        checked += 1
        found = index.digest("disclosed", key)
        if found != {"subjects": disclosure.subject_count, "subjects_sha256": disclosure.subjects_sha256}:
            problems.append(f"ledger entry {disclosure.seq} ({disclosure.flow} {disclosure.logical_date} to "
                            f"{disclosure.recipient}): {found['subjects']} subject(s) recorded beside the ledger, "
                            f"the entry says {disclosure.subject_count}, and their hash differs "
                            f"(rows removed, added or edited?)")
    registers: dict[str, set[str]] = {}
    for withdrawal in ledger.records(Withdrawal):
        held = registers.setdefault(withdrawal.agreement, index.withdrawn(withdrawal.agreement))
        if withdrawal.lookup not in held:
            problems.append(f"ledger entry {withdrawal.seq} ({withdrawal.agreement}): a withdrawal recorded in the "
                            f"ledger is missing from the withdrawals register ({WITHDRAWALS}): row removed? Until it is "
                            "restored with `transfers consent withdraw`, runs would send that subject again")
    return checked, problems


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
