"""Tell earlier recipients of every subject the register now shows as withdrawn (protocol 3.1).

The prepare step leaves the run's withdrawn subjects (keyed lookups only) in staging;
each earlier recipient of one gets a notice through :func:`transfers.notices.send_notices`,
at most once (the ledger's dedupe key), after this run's own deliveries, signed with
the key the run's deliveries were signed with (got through the run's secret lookup).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class NotifyResult(TypedDict):
    sent: int
    already_sent: int


def notify(run: FlowRun, resolvers: Resolvers, ledger: Ledger) -> NotifyResult:
    """Send a withdrawal notice to each earlier recipient of a subject withdrawn since."""
    from transfers.notices import send_notices
    from transfers.privacy.subjects import SubjectIndex

    lookups = run.staging.read_json("withdrawn_lookups", []) or []
    sent = already = 0
    if not lookups:
        log.info("notices sent", **run._ctx(withdrawn=0, sent=0, already_sent=0))
        return {"sent": 0, "already_sent": 0}
    index = SubjectIndex.for_settings(run.settings)
    try:
        for lookup in lookups:
            for result in send_notices(run.settings, run.config, ledger, resolvers.connection, kind="withdrawal",
                                       lookups={run.ref.agreement.id: lookup}, occasion="withdrawn", index=index,
                                       secret=resolvers.secret):
                sent += result.status == "sent"
                already += result.status == "already-sent"
    finally:
        index.close()
    log.info("notices sent", **run._ctx(withdrawn=len(lookups), sent=sent, already_sent=already))
    return {"sent": sent, "already_sent": already}
