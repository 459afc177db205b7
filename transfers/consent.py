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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from transfers.agreement import SharingBasis, SubjectSource, check_relative_path
from transfers.connections import ConnInfo
from transfers.errors import ConfigError, SourceError, SourceUnavailable
from transfers.privacy.transforms import normalise_identifier

IN_FORCE = ("withdrawn", "restricted")
#: Exclusion reasons, in the order they are checked (a subject is counted once, under the first).
REASONS = ("withdrawn", "restricted", "opted_out", "deceased")


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

    def counts(self) -> dict[str, int]:
        return {"withdrawn": len(self.withdrawn), "restricted": len(self.restricted), "opted_out": len(self.opted_out)}


def load_subject_lists(basis: SharingBasis, connection: Callable[[str], ConnInfo] | None, on: date) -> SubjectLists:
    """Read the flow's consent register and opt-out list as they stand on ``on``.

    Raises:
        ConfigError: a list is declared but no way to resolve its connection was given,
            or a declared column is missing.
        SourceError / SourceUnavailable: the file or table cannot be read.
    """
    lists = SubjectLists()
    for source, what in ((basis.consent_register, "consent register"), (basis.opt_outs, "opt-out list")):
        if source is None:
            continue
        if connection is None:
            # Fail closed: running without the register would send subjects who withdrew.
            raise ConfigError(f"the flow names a {what} ({source.connection}) but no connection resolver was given; "
                              "nothing was prepared")
        latest: dict[str, tuple[str, str]] = {}
        for frame in _read(source, connection(source.connection), what):
            _check_columns(frame, source, what)
            # Columns by name, not attribute: a header such as "NHS Number" is not an identifier.
            subjects = frame[source.subject].tolist()
            effectives = frame[source.effective].tolist() if source.effective else [None] * len(frame)
            statuses = frame[source.status].tolist() if source.status else [None] * len(frame)
            for raw, when, state in zip(subjects, effectives, statuses, strict=True):
                if _text(raw) is None:
                    continue
                subject = normalise_identifier(str(raw))
                effective = _text(when) or ""
                if effective and effective[:10] > on.isoformat():
                    continue  # not yet in effect on the logical date
                status = (_text(state) or "").lower() if source.status else "opted_out"
                if subject not in latest or effective >= latest[subject][0]:
                    latest[subject] = (effective, status)
        for subject, (_effective, status) in latest.items():
            if what == "opt-out list":
                lists.opted_out.add(subject)
            elif status == "withdrawn":
                lists.withdrawn.add(subject)
            elif status == "restricted":
                lists.restricted.add(subject)
    return lists


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _check_columns(frame: pd.DataFrame, source: SubjectSource, what: str) -> None:
    wanted = [c for c in (source.subject, source.status, source.effective) if c]
    missing = [c for c in wanted if c not in frame.columns]
    if missing and len(frame.columns):
        raise ConfigError(f"{what} ({source.kind} {source.path or source.table}): column(s) "
                          f"{', '.join(map(repr, missing))} not found (has: {', '.join(map(str, frame.columns))})")


def _read(source: SubjectSource, conn: ConnInfo, what: str) -> Iterator[pd.DataFrame]:
    if source.kind == "csv":
        base = conn.extra.get("path") or conn.host
        if not base:
            raise ConfigError(f"connection {conn.conn_id!r}: a file connection needs extra.path")
        path = Path(base) / check_relative_path(source.path or "", "subject list path")
        if not path.is_file():
            # Missing is not "empty": treating it as no withdrawals would send people who withdrew.
            raise SourceError(f"{path}: the {what} is not there (connection {conn.conn_id!r}); nothing was prepared")
        try:
            yield from pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""], chunksize=50_000)
        except (pd.errors.ParserError, csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"{path}: the {what} is not readable CSV ({type(exc).__name__})") from None
        return
    import sqlalchemy as sa

    from transfers.sources import sqlalchemy_url

    schema, _, name = (source.table or "").rpartition(".")
    columns = [c for c in (source.subject, source.status, source.effective) if c]
    table = sa.table(name, *(sa.column(c) for c in columns), schema=schema or None)
    engine = sa.create_engine(sqlalchemy_url(conn))
    try:
        with engine.connect() as db:
            result = db.execution_options(stream_results=True).execute(sa.select(*table.c))
            while rows := result.fetchmany(50_000):
                yield pd.DataFrame.from_records(rows, columns=columns).astype(object)
    except sa.exc.OperationalError as exc:
        raise SourceUnavailable(f"connection {conn.conn_id!r}: cannot read the {what}: "
                                f"{str(exc.orig).splitlines()[0][:200]}") from None
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"connection {conn.conn_id!r}: cannot read the {what} {source.table!r}: "
                          f"{str(getattr(exc, 'orig', exc)).splitlines()[0][:200]}") from None
    finally:
        engine.dispose()
