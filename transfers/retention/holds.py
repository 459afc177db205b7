"""Legal holds at the recipient: a delivery, or a subject's rows, kept past the controller's date.

A hold is a ``LegalHold`` ledger entry (``add``), and lifting it another (``lift``): what is held
now is the last entry of each (scope, agreement, target). While a delivery is held nothing of it
is destroyed (its rows, or its quarantined files); while a subject is held, every received
delivery of that agreement keeps the rows whose subject column holds the pseudonym and loses
the rest. Lifting the hold lets the next purge destroy what is due.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from transfers.errors import ConfigError
from transfers.ledger.records import LegalHold

if TYPE_CHECKING:
    from collections.abc import Iterable

    from transfers.ledger import Ledger
    from transfers.ledger.records import Record

__all__ = ["SCOPES", "Hold", "active_holds", "add_hold", "current_user", "holds_of", "lift_hold"]

SCOPES = ("delivery", "subject")


@dataclass(frozen=True)
class Hold:
    """A hold in force: on ``target`` (a delivery id, or a subject's pseudonym in ``agreement``)."""

    scope: str
    agreement: str
    target: str
    reason: str
    by: str
    since: datetime
    seq: int | None = None

    def describe(self) -> str:
        """How a purge and ``hold list`` name it: entry, who, since when, why (no pseudonym)."""
        return (f"legal hold on the {self.scope} (ledger entry {self.seq}, by {self.by}, "
                f"{self.since:%Y-%m-%d}): {self.reason}")


def active_holds(ledger: Ledger) -> list[Hold]:
    """Every hold in force, in the order they were placed."""
    return holds_of(ledger.records(LegalHold))


def holds_of(records: Iterable[Record]) -> list[Hold]:
    """The holds in force after ``records`` (in seq order, holding every ``LegalHold``; other kinds are ignored)."""
    latest: dict[tuple[str, str, str], LegalHold] = {}
    for record in records:
        if not isinstance(record, LegalHold):
            continue
        key = (record.scope, record.agreement, record.target)
        latest.pop(key, None)  # re-placed holds move to the end
        latest[key] = record
    return [Hold(r.scope, r.agreement, r.target, r.reason, r.by, r.when, r.seq)
            for r in latest.values() if r.action == "add"]


def current_user() -> str:
    """The OS user running the command, as a hold's ``by`` when none is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "unknown"


def add_hold(ledger: Ledger, *, scope: str, agreement: str, target: str, reason: str, by: str | None = None,
             at: datetime | None = None) -> Hold:
    """Place a hold (recorded even if one is in force already: its reason and time then are the new ones).

    Raises:
        ConfigError: ``scope`` is not ``delivery`` or ``subject``, or ``target`` or ``reason`` is empty.
    """
    _check(scope, target, reason)
    record = LegalHold(agreement=agreement, action="add", scope=scope, target=target, reason=reason.strip(),
                       by=by or current_user(), at=at or datetime.now(UTC))
    entry, _ = ledger.record(record)
    return Hold(scope, agreement, target, record.reason, record.by, entry.at, entry.seq)


def lift_hold(ledger: Ledger, *, scope: str, agreement: str, target: str, reason: str, by: str | None = None,
              at: datetime | None = None) -> Hold:
    """Lift the hold in force on ``target``; returns the hold that was lifted.

    Raises:
        ConfigError: No such hold is in force (nothing is recorded), or an argument is empty.
    """
    _check(scope, target, reason)
    held = next((h for h in active_holds(ledger) if (h.scope, h.agreement, h.target) == (scope, agreement, target)),
                None)
    if held is None:
        raise ConfigError(f"no legal hold is in force on that {scope} in agreement {agreement} "
                          f"(see transfers hold list)")
    ledger.record(LegalHold(agreement=agreement, action="lift", scope=scope, target=target, reason=reason.strip(),
                            by=by or current_user(), at=at or datetime.now(UTC)))
    return held


def _check(scope: str, target: str, reason: str) -> None:
    if scope not in SCOPES:
        raise ConfigError(f"legal hold scope {scope!r}: use one of {', '.join(SCOPES)}")
    if not target.strip():
        raise ConfigError(f"legal hold: name the {scope}")
    if not reason.strip():
        raise ConfigError("legal hold: give a reason (a case or matter reference, never a person's name)")
