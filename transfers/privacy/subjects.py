"""Which subjects each disclosure, exclusion and notice concerned, by pseudonym only.

Kept in a table beside the ledger (same database) so ledger payloads stay
small: a disclosure's ledger entry carries the count and a SHA-256 over the
sorted pseudonyms, which ties this table's rows to the hash chain.

Each row holds two keyed values, never the identifier:

* ``lookup``: the subject under a local lookup key that never leaves the
  sender and does not change when the sharing key rotates, so IG can find a
  person's whole history (``transfers subject history``);
* ``pseudonym``: the pseudonym the recipient was sent (under ``key_id``), so a
  withdrawal or correction notice names the subject the way that recipient knows.

Rows are only added; a unique ``(event, ref, lookup)`` makes re-runs record nothing new.

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
from transfers.privacy.pseudonyms import derive_key, pseudonymise

if TYPE_CHECKING:
    from transfers.ledger import Ledger

TABLE = "subject_events"
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


def _define(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        TABLE,
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("agreement", sa.String(200), nullable=False),
        sa.Column("flow", sa.String(200)),
        sa.Column("logical_date", sa.Date()),
        sa.Column("recipient", sa.String(200)),
        sa.Column("lookup", sa.String(64), nullable=False),
        sa.Column("pseudonym", sa.String(64)),
        sa.Column("key_id", sa.String(100)),
        sa.Column("detail", sa.String(200)),
        sa.Column("ref", sa.String(500), nullable=False),
        sa.UniqueConstraint("event", "ref", "lookup", name=f"uq_{TABLE}"),
        # (event, ref) lookups use the unique constraint's index; no second one.
        sa.Index(f"ix_{TABLE}_lookup", "lookup"),
    )


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


class SubjectIndex:
    """The ``subject_events``, ``subject_seals`` and ``subject_withdrawals`` tables in the ledger's database."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url)
        metadata = sa.MetaData()
        self.table = _define(metadata)
        self.seals = _define_seals(metadata)
        self.withdrawals = _define_withdrawals(metadata)
        metadata.create_all(self.engine, checkfirst=True)

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
                conn.execute(self._insert(), [{
                    "at": now, "event": "withdrawn", "agreement": agreement, "flow": None, "logical_date": None,
                    "recipient": None, "lookup": lookup, "pseudonym": None, "key_id": None,
                    "detail": "recorded in the withdrawals register", "ref": f"withdrawal:{agreement}"}])
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

    def _insert(self) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert

            return insert(self.table).on_conflict_do_nothing()
        return sa.insert(self.table).prefix_with("OR IGNORE")

    def record(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add events (each a dict of the table's columns; ``at`` defaults to now)."""
        now = datetime.now(UTC)
        batch = [{"at": now, **row} for row in rows]
        if batch:
            with self.engine.begin() as conn:
                conn.execute(self._insert(), batch)

    def copy_prepared(self, prepared_ref: str, *, disclosure_ref: str, recipient: str) -> None:
        """Turn one prepare step's subjects into the disclosure to ``recipient``, in SQL (nothing in memory)."""
        t = self.table
        select = sa.select(
            sa.literal(datetime.now(UTC), sa.DateTime(timezone=True)), sa.literal("disclosed"), t.c.agreement,
            t.c.flow, t.c.logical_date, sa.literal(recipient), t.c.lookup, t.c.pseudonym, t.c.key_id, t.c.detail,
            sa.literal(disclosure_ref),
        ).where(t.c.event == "prepared", t.c.ref == prepared_ref)
        columns = ["at", "event", "agreement", "flow", "logical_date", "recipient", "lookup", "pseudonym", "key_id",
                   "detail", "ref"]
        with self.engine.begin() as conn:
            conn.execute(self._insert().from_select(columns, select))

    def forget_prepared(self, flow_key: str, logical_date: date) -> int:
        """Drop the working "prepared" rows of one (flow, date) once every recipient's disclosure is recorded.

        They only carry subjects from the prepare step to the disclosure; kept after
        that they would be a second, unneeded copy of every pseudonym sent.
        """
        t = self.table
        prefix = prepared_prefix(flow_key, logical_date.isoformat())
        with self.engine.begin() as conn:
            gone = conn.execute(sa.delete(t).where(t.c.event == "prepared", t.c.flow == flow_key,
                                                   t.c.logical_date == logical_date)).rowcount
            conn.execute(sa.delete(self.seals).where(self.seals.c.ref.startswith(prefix, autoescape=True)))
        return int(gone or 0)

    def digest(self, event: str, ref: str) -> dict[str, Any]:
        """Count and SHA-256 over the sorted pseudonyms of one event (for the ledger entry)."""
        t = self.table
        digest, count = hashlib.sha256(), 0
        with self.engine.connect() as conn:
            rows = conn.execution_options(stream_results=True).execute(
                sa.select(t.c.pseudonym).where(t.c.event == event, t.c.ref == ref).order_by(t.c.pseudonym))
            for (pseudonym,) in rows:
                digest.update(f"{pseudonym or ''}\n".encode())
                count += 1
        return {"subjects": count, "subjects_sha256": digest.hexdigest()}

    def events(self, lookups: Iterable[str], *, event: str | None = None) -> list[SubjectEvent]:
        """Every event about the given lookups (one person, under each agreement's lookup key), oldest first."""
        wanted = list(set(lookups))
        if not wanted:
            return []
        t = self.table
        query = sa.select(t).where(t.c.lookup.in_(wanted), t.c.event != "prepared")
        if event is not None:
            query = query.where(t.c.event == event)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.at, t.c.id)).all()
        return [
            SubjectEvent(_aware(r.at), r.event, r.agreement, r.flow, r.logical_date, r.recipient, r.pseudonym,
                         r.key_id, r.detail, r.ref)
            for r in rows
        ]


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
