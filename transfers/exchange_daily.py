"""Each day, after the retention purge: what a party owes its partners, and what it collects from them.

As a recipient (``TRANSFERS_PARTY`` receives flows): act on the withdrawal and correction notices in
its inboxes (each confirmed, signed), then issue a signed destruction certificate for every received
delivery the purge has wholly destroyed. As a sender and data controller: collect the destruction
certificates recipients returned for disclosures past their destroy-by, and the confirmations of the
notices it sent. Each part goes on when another fails; the problems are returned together, so the
retention DAG's task fails visibly and the next day tries again (everything here is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from transfers.errors import TransferError
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.agreement import Config
    from transfers.flowrun import Resolvers
    from transfers.ledger import Ledger
    from transfers.settings import Settings

__all__ = ["DailyExchange", "run_daily_exchange"]

log = get_logger(__name__)


@dataclass
class DailyExchange:
    """Counts of what was done, and the problems met (each names the flow, partner or delivery)."""

    notices_applied: int = 0
    certificates_issued: int = 0
    certificates_collected: int = 0
    confirmations_collected: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        return {"notices_applied": self.notices_applied, "certificates_issued": self.certificates_issued,
                "certificates_collected": self.certificates_collected,
                "confirmations_collected": self.confirmations_collected, "problems": len(self.problems)}


def run_daily_exchange(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, *,
                       now: datetime | None = None) -> DailyExchange:
    """Apply notices and issue certificates (as a recipient); collect certificates and confirmations (as a sender)."""
    from transfers.agreement import sides

    done = DailyExchange()
    me = settings.party
    receives = bool(me and sides(config, me).receiving)
    if receives and me:
        _notices(settings, config, ledger, resolvers, me, now, done)
        _issue(settings, config, ledger, resolvers, me, now, done)
    _collect_certificates(settings, config, ledger, resolvers, now, done)
    _collect_confirmations(settings, config, ledger, resolvers, now, done)
    log.info("daily exchange", **done.summary())
    return done


def _notices(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, me: str,
             now: datetime | None, done: DailyExchange) -> None:
    from transfers.receive.notices import apply_notices

    try:
        outcomes = apply_notices(settings, config, ledger, resolvers, me=me, now=now)
    except TransferError as exc:
        done.problems.append(f"notices: {exc}")
        return
    done.notices_applied = sum(1 for o in outcomes if o.status == "applied")
    done.problems += [f"notice {o.flow} {o.name}: refused: {o.reason}" for o in outcomes if o.status == "refused"]


def _issue(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, me: str,
           now: datetime | None, done: DailyExchange) -> None:
    from transfers.receive.certify import issue_certificates

    try:
        issued = issue_certificates(settings, config, ledger, resolvers, me=me, now=now)
    except TransferError as exc:
        done.problems.append(f"destruction certificates: {exc}")
        return
    done.certificates_issued = sum(1 for i in issued if not i.error)
    done.problems += [f"destruction certificate {i.delivery_id}: {i.error}" for i in issued if i.error]


def _collect_certificates(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers,
                          now: datetime | None, done: DailyExchange) -> None:
    from transfers.destruction import collect_certificates

    try:
        results = collect_certificates(settings, config, ledger, resolvers.connection, now=now)
    except TransferError as exc:
        done.problems.append(f"collecting destruction certificates: {exc}")
        return
    done.certificates_collected = sum(1 for r in results if r.status == "certified")
    done.problems += [f"destruction certificate {r.delivery_id}: {r.status}: {r.detail}"
                      for r in results if r.status in ("refused", "error")]


def _collect_confirmations(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers,
                           now: datetime | None, done: DailyExchange) -> None:
    from transfers.notice_confirmations import collect_confirmations

    try:
        statuses = collect_confirmations(settings, config, ledger, resolvers.connection, now=now)
    except TransferError as exc:
        done.problems.append(f"collecting notice confirmations: {exc}")
        return
    done.confirmations_collected = sum(1 for s in statuses if s.status == "confirmed")
    done.problems += [f"notice confirmation {s.flow} {s.recipient} {s.reference}: refused"
                      for s in statuses if s.status == "refused"]
