"""The first step: the agreement must be live and signed off; which recipients still need this (flow, date).

Signed off: every partner has signed this exact version of the agreement file with
its pinned key (``transfers.agreement.signoff``); otherwise ``AgreementNotSigned`` stops the run
before anything is extracted.

A recipient with a disclosure in the ledger is not pending. With nobody pending the
run has nothing to do: ``transfers run`` stops, the DAG short-circuits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from transfers.agreement import check_live
from transfers.agreement.signoff import require_signoff
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class CheckResult(TypedDict):
    live: bool
    pending: list[str]


def check_agreement(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> CheckResult:
    """Refuse to start unless the agreement is live and signed by every partner, and the sender can sign; say who still needs the data."""
    from transfers.retention.running import mark_running  # the retention package loads its purge

    check_live(run.ref.agreement, run.config.protocol, run.clock_today)
    require_signoff(run.ref.path, run.ref.agreement, run.config.protocol, run.settings.keys)
    pending = [r.partner for r in run.ref.flow.to if ledger.find(run.disclosure_key(r)) is None]
    if pending:
        # Fail fast: the encrypt step needs the sender's signing key, and a night that cannot sign should
        # stop here, before the extract, not after quality and prepare have run.
        from transfers.steps.encrypt import sender_signing_key

        sender_signing_key(run, resolvers)
        # Until cleanup, a purge keeps its hands off this (flow, date): the outbox is reused on a retry.
        # Only when there is work: the DAG short-circuits otherwise and may skip its cleanup.
        mark_running(run.settings.layout, run.ref.agreement.id, run.ref.flow.id, run.ds)
    log.info("agreement live", **run._ctx(pending=pending))
    return {"live": True, "pending": pending}
