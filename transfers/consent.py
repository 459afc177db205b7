"""Consent register and national data opt-out list: who must not be sent, and why.

Both are sources the agreement names (a CSV file or a SQL table). A register
row says a subject's consent was ``withdrawn``, ``restricted`` or ``given``
from an effective date; the latest row in effect on the logical date wins, so
a later ``given`` lifts an earlier withdrawal. An opt-out list row means the
subject has opted out from its effective date (or always, without one).

Identifiers are normalised exactly as for pseudonyms (whitespace removed,
upper case), so ``"943 476 5919"`` in the register matches ``"9434765919"``
in the extract. The sets hold identifiers only, in memory for one run; they
are never logged or written out.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfers.agreement import SharingBasis, SubjectSource, check_relative_path
from transfers.connections import ConnInfo
from transfers.errors import ConfigError, SourceError, SourceUnavailable, TransferError
from transfers.privacy.pseudonyms import normalise_identifier

IN_FORCE = ("withdrawn", "restricted")
#: A withdrawal the sender was told of (``transfers consent withdraw``), from its own withdrawals register.
NOTIFIED = "withdrawn_notified"
#: Exclusion reasons, in the order they are checked (a subject is counted once, under the first).
REASONS = ("withdrawn", NOTIFIED, "restricted", "opted_out", "deceased")
#: How a reason reads to people (run summary, subject history) where its key would not.
LABELS = {NOTIFIED: "withdrawn (notified)"}


def reason_label(reason: str) -> str:
    return LABELS.get(reason, reason.replace("_", " "))


@dataclass
class SubjectLists:
    """Normalised identifiers whose consent is withdrawn/restricted or who opted out, on one date."""

    withdrawn: set[str] = field(default_factory=set)
    restricted: set[str] = field(default_factory=set)
    opted_out: set[str] = field(default_factory=set)

    def reason(self, identifier: str) -> str | None:
        """Why this (normalised) subject may not be shared with consent as the basis, or None."""
        if identifier in self.withdrawn:
            return "withdrawn"
        if identifier in self.restricted:
            return "restricted"
        if identifier in self.opted_out:
            return "opted_out"
        return None

    def reasons(self, identifiers: pd.Series) -> pd.Series:
        """:meth:`reason` of every (normalised) identifier of a batch at once: set lookups, no loop per row."""
        found = np.full(len(identifiers), None, dtype=object)
        # Later assignments win, so the lists go in reverse order of precedence.
        for reason, listed in (("opted_out", self.opted_out), ("restricted", self.restricted),
                               ("withdrawn", self.withdrawn)):
            if listed:
                found[identifiers.isin(listed).to_numpy()] = reason
        return pd.Series(found, index=identifiers.index, dtype=object)

    def counts(self) -> dict[str, int]:
        return {"withdrawn": len(self.withdrawn), "restricted": len(self.restricted), "opted_out": len(self.opted_out)}


def load_subject_lists(basis: SharingBasis, connection: Callable[[str], ConnInfo] | None, on: date) -> SubjectLists:
    """Read the flow's consent register and opt-out list as they stand on ``on``.

    Raises:
        ConfigError: a list is declared but no way to resolve its connection was given,
            its table or a declared column is not there, or a register holds a status
            its ``statuses`` do not map (a wrong word is never read as "given").
        SourceError / SourceUnavailable: the file or table cannot be read.
    """
    lists = SubjectLists()
    for source, what in _declared(basis):
        if connection is None:
            # Fail closed: running without the register would send subjects who withdrew.
            raise ConfigError(f"the flow names a {what} ({source.connection}) but no connection resolver was given; "
                              "nothing was prepared")
        register = what == "consent register"
        words = _status_words(source) if register and source.status else {}
        unmapped: Counter[str] = Counter()
        latest: dict[str, tuple[str, str]] = {}
        for frame in _read(source, connection(source.connection), what):
            # Columns by name, not attribute: a header such as "NHS Number" is not an identifier.
            subjects = frame[source.subject].tolist()
            effectives = frame[source.effective].tolist() if source.effective else [None] * len(frame)
            statuses = frame[source.status].tolist() if source.status else [None] * len(frame)
            for raw, when, state in zip(subjects, effectives, statuses, strict=True):
                if _text(raw) is None:
                    continue
                if not register:
                    status = "opted_out"
                elif source.status:
                    word = _text(state) or ""
                    mapped = words.get(word.casefold())
                    if mapped is None:
                        unmapped[word] += 1
                        continue
                    status = mapped
                else:
                    status = "withdrawn"  # a register without a status column lists withdrawals only
                subject = normalise_identifier(str(raw))
                effective = _text(when) or ""
                if effective and effective[:10] > on.isoformat():
                    continue  # not yet in effect on the logical date
                if subject not in latest or effective >= latest[subject][0]:
                    latest[subject] = (effective, status)
        if unmapped:
            raise ConfigError(_unmapped_message(source, what, unmapped))
        for subject, (_effective, status) in latest.items():
            if status == "opted_out":
                lists.opted_out.add(subject)
            elif status == "withdrawn":
                lists.withdrawn.add(subject)
            elif status == "restricted":
                lists.restricted.add(subject)
    return lists


def probe_subject_lists(basis: SharingBasis, connection: Callable[[str], ConnInfo]) -> list[str]:
    """Problems with the flow's consent register and opt-out list, found without reading a row.

    Each list's columns are read (a CSV's header, a table's ``LIMIT 0``) and
    compared with the columns the flow declares; a missing file, table or
    column, an unresolvable connection or an unreachable database is one
    problem each. No problem: an empty list. Nothing personal is read.
    """
    problems: list[str] = []
    for source, what in _declared(basis):
        try:
            conn = connection(source.connection)
            _check_columns(_columns(source, conn, what), source, what, conn)
        except TransferError as exc:
            problems.extend(exc.problems if isinstance(exc, ConfigError) else [str(exc)])
    return problems


def _declared(basis: SharingBasis) -> Iterator[tuple[SubjectSource, str]]:
    for source, what in ((basis.consent_register, "consent register"), (basis.opt_outs, "opt-out list")):
        if source is not None:
            yield source, what


def _status_words(source: SubjectSource) -> dict[str, str]:
    """The register's own words (case-folded) -> withdrawn | restricted | given."""
    return {word.strip().casefold(): status for status, words in source.statuses.items() for word in words}


def _unmapped_message(source: SubjectSource, what: str, unmapped: Counter[str]) -> str:
    rows = sum(unmapped.values())
    # Status words are vocabulary, not personal data; anything that does not look like a
    # word (digits, long text) may be an identifier or a date from a wrong column, so it is not shown.
    plain = all(len(w) <= 40 and not any(c.isdigit() for c in w) for w in unmapped)
    if plain and len(unmapped) <= 10:
        values = ", ".join(f"{(w or '(blank)')!r} ({n} row{'s' if n != 1 else ''})"
                           for w, n in unmapped.most_common())
    else:
        values = f"{len(unmapped)} distinct values, not shown as they do not look like status words " \
                 f"(is {source.status!r} the status column?)"
    mapped = ", ".join(f"{k}: {v}" for k, v in source.statuses.items())
    return (f"{_label(source, what)}: {rows} row(s) have a status the flow does not map: {values}. "
            f"Add each word to consent.{_key(what)}.statuses (now {{{mapped}}}) under withdrawn, restricted "
            "or given; nothing was prepared")


def _key(what: str) -> str:
    return "consent_register" if what == "consent register" else "opt_outs"


def _label(source: SubjectSource, what: str, conn: ConnInfo | None = None) -> str:
    return f"{what} ({source.kind} {source.path or source.table!r}, connection {conn.conn_id if conn else source.connection!r})"


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _check_columns(columns: list[str], source: SubjectSource, what: str, conn: ConnInfo) -> None:
    wanted = [c for c in (source.subject, source.status, source.effective) if c]
    missing = [c for c in wanted if c not in columns]
    if missing:
        names = ", ".join(map(str, columns)) or "no columns"
        raise ConfigError(f"{_label(source, what, conn)}: column(s) {', '.join(map(repr, missing))} not found "
                          f"(has: {names}); fix consent.{_key(what)} in the agreement")


def _csv_path(source: SubjectSource, conn: ConnInfo, what: str) -> Path:
    base = conn.extra.get("path") or conn.host
    if not base:
        raise ConfigError(f"connection {conn.conn_id!r}: a file connection needs extra.path")
    path = Path(base) / check_relative_path(source.path or "", "subject list path")
    if not path.is_file():
        # Missing is not "empty": treating it as no withdrawals would send people who withdrew.
        raise SourceError(f"{path}: the {what} is not there (connection {conn.conn_id!r}); nothing was prepared")
    return path


def _columns(source: SubjectSource, conn: ConnInfo, what: str) -> list[str]:
    """The list's column names, read without its rows."""
    if source.kind == "csv":
        path = _csv_path(source, conn, what)
        try:
            return [str(c) for c in pd.read_csv(path, dtype=str, nrows=0).columns]
        except pd.errors.EmptyDataError:
            return []
        except (pd.errors.ParserError, csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: the {what} is not readable CSV ({type(exc).__name__})") from None
    import sqlalchemy as sa

    engine = _engine(conn)
    try:
        with engine.connect() as db:
            return _sql_columns(db, source, conn, what)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error(exc, conn, what, source) from None
    finally:
        engine.dispose()


def _engine(conn: ConnInfo) -> Any:
    import sqlalchemy as sa

    from transfers.sources import sqlalchemy_url

    return sa.create_engine(sqlalchemy_url(conn))


def _split(source: SubjectSource) -> tuple[str | None, str]:
    schema, _, name = (source.table or "").rpartition(".")
    return schema or None, name


def _sql_columns(db: Any, source: SubjectSource, conn: ConnInfo, what: str) -> list[str]:
    """The table's columns from a ``LIMIT 0`` select; a table that is not there is a ConfigError.

    Checked before reading because the database's own error for a wrong name
    differs by driver (SQLite's is an OperationalError, which reads as "try
    again"), and no number of retries fixes a name in the agreement.
    """
    import sqlalchemy as sa

    schema, name = _split(source)
    try:
        return [str(c) for c in db.execute(sa.select(sa.text("*")).select_from(sa.table(name, schema=schema))
                                           .limit(0)).keys()]
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        db.rollback()
        code = getattr(exc.orig, "pgcode", None)
        gone = code in _PG_NO_TABLE if code else not sa.inspect(db).has_table(name, schema=schema)
        if gone:
            raise ConfigError(f"{_label(source, what, conn)}: table {source.table!r} not found; fix "
                              f"consent.{_key(what)}.table in the agreement (or the connection's database)") from None
        raise


# undefined_table, invalid_schema_name
_PG_NO_TABLE = ("42P01", "3F000")


def _db_error(exc: Exception, conn: ConnInfo, what: str, source: SubjectSource) -> TransferError:
    import sqlalchemy as sa

    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
    if isinstance(exc, sa.exc.OperationalError):
        return SourceUnavailable(f"connection {conn.conn_id!r}: cannot read the {what}: {detail}")
    return SourceError(f"connection {conn.conn_id!r}: cannot read the {what} {source.table!r}: {detail}")


def _read(source: SubjectSource, conn: ConnInfo, what: str) -> Iterator[pd.DataFrame]:
    if source.kind == "csv":
        path = _csv_path(source, conn, what)
        _check_columns(_columns(source, conn, what), source, what, conn)
        try:
            yield from pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], chunksize=50_000)
        except (pd.errors.ParserError, csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: the {what} is not readable CSV ({type(exc).__name__})") from None
        return
    import sqlalchemy as sa

    schema, name = _split(source)
    columns = [c for c in (source.subject, source.status, source.effective) if c]
    table = sa.table(name, *(sa.column(c) for c in columns), schema=schema)
    engine = _engine(conn)
    try:
        with engine.connect() as db:
            _check_columns(_sql_columns(db, source, conn, what), source, what, conn)
            result = db.execution_options(stream_results=True).execute(sa.select(*table.c))
            while rows := result.fetchmany(50_000):
                yield pd.DataFrame.from_records(rows, columns=columns).astype(object)
    except sa.exc.SQLAlchemyError as exc:
        raise _db_error(exc, conn, what, source) from None
    finally:
        engine.dispose()
