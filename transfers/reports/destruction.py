"""Where each disclosure stands with its destruction at the recipient: certified, awaited, or overdue.

One reading of the controller's ledger shared by the IG report, ``transfers certificates`` and
``transfers ledger verify``. A disclosure's *destroy-by* is the agreement's
``retention.period`` after its logical date (the signed manifest carried the same date). Only a
certificate whose signature verified against the recipient's pinned key is ever recorded as
``DestructionCertified``; ``CertificateRefused`` ones are counted apart and never count.

States:
    not-due        destroy-by is still to come
    awaiting       destroy-by has come; no certificate yet, within ``TRANSFERS_DESTRUCTION_GRACE_DAYS``
    destroyed      the recipient's verified certificate is recorded (its SHA-256 shown)
    overdue        no certificate ``grace`` days after destroy-by
    at-controller  the recipient is the controller: it records its own destruction in its own ledger
    unsupported    the controller is neither the sender nor the recipient: its certificates are not collected yet
    unknown        the flow is no longer in the config, so its destroy-by cannot be worked out
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

from transfers.errors import TransferError
from transfers.ledger.records import CertificateRefused, DestructionCertified, Disclosure
from transfers.receipt import delivery_id

if TYPE_CHECKING:
    from collections.abc import Iterable

    from transfers.agreement import Config, FlowRef
    from transfers.ledger import Ledger, VerifyReport
    from transfers.ledger.records import Record
    from transfers.settings import Settings

__all__ = ["PAST_DESTROY_BY", "DisclosureDestruction", "destroy_by", "destruction_gaps", "destruction_of",
           "destruction_statuses", "due_moment", "verify_destruction"]

#: The states of a disclosure whose destroy-by has come (what ``transfers certificates`` lists).
PAST_DESTROY_BY = ("awaiting", "destroyed", "overdue", "at-controller", "unsupported")


@dataclass(frozen=True)
class DisclosureDestruction:
    """One disclosure and what its recipient certified about destroying it."""

    agreement: str
    flow: str  # <agreement>.<flow>
    logical_date: str
    recipient: str
    delivery_id: str
    rows: int
    status: str  # see the module docstring
    controller: str = ""
    destroy_by: date | None = None
    overdue_from: date | None = None  # destroy_by + grace
    certificate_sha256: str | None = None
    destroyed_at: str | None = None
    signer_fingerprint: str | None = None
    rule: str = ""
    refused_certificates: int = 0
    disclosure_seq: int | None = None
    certified_seq: int | None = None

    @property
    def past_destroy_by(self) -> bool:
        return self.status in PAST_DESTROY_BY

    def detail(self) -> str:
        """What the state means for this disclosure, in a few words."""
        if self.status == "destroyed":
            return f"{self.rows} rows destroyed at {self.destroyed_at}, certificate sha256 {self.certificate_sha256}"
        if self.status == "overdue":
            return f"no certificate; destroy by {self.destroy_by}, overdue since {self.overdue_from}"
        if self.status == "awaiting":
            return f"destroy by {self.destroy_by}; certificate expected by {self.overdue_from}"
        if self.status == "not-due":
            return f"destroy by {self.destroy_by}"
        if self.status == "at-controller":
            return f"{self.controller} is the controller and the recipient: its own ledger records it"
        if self.status == "unsupported":
            return (f"controller {self.controller} is neither the sender nor the recipient: collecting its "
                    f"certificates is not supported yet")
        return "flow no longer in the config"


def destroy_by(ref: FlowRef, logical_date: date) -> date:
    """The controller's date: the agreement's retention period after the logical date (as the manifest says)."""
    return ref.agreement.retention.period.after(logical_date)


def due_moment(day: date) -> datetime:
    """The start (UTC) of ``day``: destruction is due *by* destroy-by, so from the start of that day."""
    return datetime.combine(day, time.min, UTC)


def destruction_statuses(ledger: Ledger, config: Config, *, grace_days: int, since: datetime | None = None,
                         until: datetime | None = None, flow: str | None = None,
                         now: datetime | None = None) -> list[DisclosureDestruction]:
    """Every disclosure recorded in [since, until) (of one ``<agreement>.<flow>`` if given), with its destruction
    state as at ``now``; certificates are looked for whenever they were recorded."""
    answers = list(ledger.records(DestructionCertified, CertificateRefused, flow=flow))
    return destruction_of(config, ledger.records(Disclosure, flow=flow, since=since, until=until), answers,
                          grace_days=grace_days, now=now)


def destruction_of(config: Config, disclosures: Iterable[Disclosure], answers: Iterable[Record], *,
                   grace_days: int, now: datetime | None = None) -> list[DisclosureDestruction]:
    """``disclosures`` with their destruction state as at ``now``, from records already read.

    Args:
        answers: Records in seq order holding at least every ``DestructionCertified`` and ``CertificateRefused``
            of these disclosures' flows, whenever recorded; records of other kinds are ignored.
    """
    now = now or datetime.now(UTC)
    certified: dict[str, DestructionCertified] = {}
    refused: dict[str, int] = {}
    for answer in answers:
        if isinstance(answer, DestructionCertified):
            certified[answer.delivery_id] = answer
        elif isinstance(answer, CertificateRefused):
            refused[answer.delivery_id] = refused.get(answer.delivery_id, 0) + 1
    out = []
    for disclosure in disclosures:
        if disclosure.logical_date is None:
            continue  # every disclosure is of one logical date; an entry without one is not a delivery
        flow_key = disclosure.flow or ""
        flow_id = flow_key.partition(".")[2] or flow_key
        partner = disclosure.recipient or ""
        did = delivery_id(disclosure.agreement, flow_id, disclosure.logical_date.isoformat(), partner)
        base = DisclosureDestruction(agreement=disclosure.agreement, flow=flow_key,
                                     logical_date=disclosure.logical_date.isoformat(), recipient=partner,
                                     delivery_id=did, rows=disclosure.rows, status="unknown",
                                     refused_certificates=refused.get(did, 0), disclosure_seq=disclosure.seq)
        try:
            ref = config.flow(flow_key)
        except TransferError:  # a flow no longer in the config: still listed, with no date
            ref = None
        if ref is not None:
            day = destroy_by(ref, disclosure.logical_date)
            controller = ref.agreement.retention.controller
            base = replace(base, controller=controller, destroy_by=day, overdue_from=day + timedelta(days=grace_days))
        found = certified.get(did)
        if found is not None:
            out.append(replace(base, status="destroyed", certificate_sha256=found.certificate_sha256,
                               destroyed_at=found.destroyed_at, signer_fingerprint=found.signer_fingerprint,
                               rule=found.rule, certified_seq=found.seq))
        elif ref is None or base.destroy_by is None or base.overdue_from is None:
            out.append(base)
        elif now < due_moment(base.destroy_by):
            out.append(replace(base, status="not-due"))
        elif base.controller == partner:
            out.append(replace(base, status="at-controller"))
        elif base.controller != ref.flow.from_:
            out.append(replace(base, status="unsupported"))
        else:
            out.append(replace(base, status="overdue" if now >= due_moment(base.overdue_from) else "awaiting"))
    return out


def destruction_gaps(ledger: Ledger, config: Config, *, grace_days: int, now: datetime | None = None) -> list[str]:
    """One line per disclosure overdue for destruction at its recipient (``transfers ledger verify``)."""
    return [f"entry {s.disclosure_seq}: disclosure {s.flow} {s.logical_date} to {s.recipient}: destroy by "
            f"{s.destroy_by}, and no verified destruction certificate {grace_days} day(s) later (overdue since "
            f"{s.overdue_from}); ask {s.recipient} to destroy it and return its certificate"
            + (f" ({s.refused_certificates} certificate(s) refused)" if s.refused_certificates else "")
            for s in destruction_statuses(ledger, config, grace_days=grace_days, now=now) if s.status == "overdue"]


def verify_destruction(settings: Settings, report: VerifyReport, on: date | None = None) -> None:
    """Add disclosures overdue for destruction at their recipient to a ledger ``VerifyReport`` (``transfers ledger
    verify``): one problem each, starting ``destruction:``; ``on`` checks as at the end of that date."""
    from transfers.agreement import load_config

    now = datetime.combine(on, datetime.max.time(), UTC) if on else datetime.now(UTC)
    config = load_config(settings.config_dir)
    with settings.open_ledger() as ledger:
        report.problems.extend(f"destruction: {gap}" for gap in destruction_gaps(
            ledger, config, grace_days=settings.destruction_grace_days, now=now))
