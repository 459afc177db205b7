"""The messages people are sent when something needs them, and who gets each (issue 13, alerts).

Pure: no Airflow, no network. ``transfers_airflow.alerts`` sends what is built here through
Airflow's notifier mechanism. Each builder returns an ``Alert`` (subject, plain-text body, the
addresses) naming the flow, the logical date, the stage, what happened and the next step. A
message never carries record values: only names, counts, paths and the project's own error
text (which names files, fields, keys and hosts, never values; see ``transfers.errors``). An
error that is not one of ours is named by its class only, since its text may quote data.

Who gets what, from the agreement's ``contacts``:

* a failed task, a receipt overdue: the sending partner's ``engineer`` contacts (a receive DAG's failure:
  the receiving partner's);
* a quality block: the sending partner's ``data-owner`` contacts, with the scorecard's path;
* a destruction certificate overdue: the controller's ``ig`` contacts;
* an agreement due for review within ``REVIEW_WARNING_DAYS``: every partner's ``ig`` contacts;
* a security incident (``transfers.incidents``): the ``ig`` contacts of the party that saw it (ours), at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import QualityBlocked, ReceiptOverdue, TransferError

if TYPE_CHECKING:
    from transfers.agreement import Agreement, Config, Contact, FlowRef
    from transfers.ledger import Ledger
    from transfers.ledger.records import Incident

__all__ = ["REVIEW_WARNING_DAYS", "Alert", "certificate_overdue_alert", "daily_alerts",
           "failure_alert", "incident_alert", "quality_block_alert", "receipt_overdue_alert", "review_due",
           "review_due_alert", "what_happened"]

#: An agreement whose ``review_by`` is this many days away or fewer is announced to IG, once a day.
REVIEW_WARNING_DAYS = 30
_MAX_DETAIL = 1000  # an error's text in a message, at most: enough to act on, never a dump


@dataclass(frozen=True)
class Alert:
    """One message: who it goes to (``to``: each contact), what it says, and what kind of event it is."""

    kind: str
    subject: str
    body: str
    to: tuple[Contact, ...]

    @property
    def addresses(self) -> list[str]:
        """The recipients' email addresses, each once, in the agreement's order."""
        return list(dict.fromkeys(c.email for c in self.to))


def what_happened(error: BaseException | None) -> str:
    """An error as a message may quote it: our own errors' text, anything else by its class name only."""
    if error is None:
        return "the task failed (no error was passed on; see the task log)"
    if isinstance(error, TransferError):
        text = str(error).strip() or type(error).__name__
        return text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + " (cut; see the task log)"
    return f"{type(error).__name__} (its text is only in the task log, as it may quote data)"


def _body(ref: FlowRef, logical_date: date | str, stage: str, happened: str, next_step: str,
          extra: tuple[str, ...] = ()) -> str:
    return "\n".join([
        f"Agreement: {ref.agreement.name} ({ref.agreement.id})",
        f"Flow: {ref.key} ({ref.flow.name}), from {ref.flow.from_} to {', '.join(r.partner for r in ref.flow.to)}",
        f"Logical date: {logical_date}",
        f"Stage: {stage}",
        f"What happened: {happened}",
        *extra,
        f"Next step: {next_step}",
        "",
        "This message carries no record values; the run's log and the ledger have the details.",
    ])


def failure_alert(ref: FlowRef, logical_date: date | str, stage: str, error: BaseException | None, *,
                  partner: str | None = None) -> Alert:
    """A failed task of a flow's run; a quality block or an overdue receipt gets its own message (the error's type
    decides), otherwise ``partner``'s engineers (default the sender; a recipient for its receive DAG) are told
    the stage and the error."""
    cause = _transfer_error(error)
    if isinstance(cause, QualityBlocked):
        return quality_block_alert(ref, logical_date, cause.report, happened=what_happened(cause), stage=stage)
    if isinstance(cause, ReceiptOverdue):
        return receipt_overdue_alert(ref, logical_date, stage, what_happened(cause))
    next_step = ("nothing was sent by the failed stage. Fix the cause named above (config, keys, source or "
                 "server), then clear the failed task in Airflow (or `transfers run "
                 f"{ref.key} --date {logical_date}`); a re-run never sends twice.")
    return Alert(
        kind="failure",
        subject=f"[isp-transfers] {ref.key} {logical_date}: failed at {stage}",
        body=_body(ref, logical_date, stage, what_happened(cause or error), next_step),
        to=tuple(ref.agreement.contacts_of("engineer", partner or ref.flow.from_)),
    )


def quality_block_alert(ref: FlowRef, logical_date: date | str, report: Path | str | None, *,
                        happened: str = "a data quality characteristic whose policy is block failed",
                        stage: str = "quality") -> Alert:
    """A quality block: the data owner is sent where the scorecard is (the report names record keys, not values)."""
    where = str(report) if report else "(no scorecard was written; see the task log)"
    return Alert(
        kind="quality-block",
        subject=f"[isp-transfers] {ref.key} {logical_date}: blocked by data quality",
        body=_body(ref, logical_date, stage, happened,
                   "read the scorecard, correct the records it lists at source, then re-run the night "
                   "(clear the failed task in Airflow); nothing was sent until then.",
                   extra=(f"Scorecard: {where}",)),
        to=tuple(ref.agreement.contacts_of("data-owner", ref.flow.from_)),
    )


def receipt_overdue_alert(ref: FlowRef, logical_date: date | str, stage: str, happened: str) -> Alert:
    """No signed receipt within the flow's ``receipt_within``: the sender's engineers are told to ask the recipient."""
    return Alert(
        kind="receipt-overdue",
        subject=f"[isp-transfers] {ref.key} {logical_date}: receipt overdue",
        body=_body(ref, logical_date, stage, happened,
                   f"ask the recipient whether the delivery arrived and was loaded (receipt_within is "
                   f"{ref.flow.receipt_within}); `transfers receipts` shows each delivery's state.",),
        to=tuple(ref.agreement.contacts_of("engineer", ref.flow.from_)),
    )


def certificate_overdue_alert(ref: FlowRef, logical_date: date | str, recipient: str, destroy_by: date) -> Alert:
    """A disclosure past its destroy-by (and grace) with no signed destruction certificate: the controller's IG."""
    return Alert(
        kind="certificate-overdue",
        subject=f"[isp-transfers] {ref.key} {logical_date}: destruction certificate overdue from {recipient}",
        body=_body(ref, logical_date, "destruction certificate",
                   f"{recipient} was to destroy this delivery by {destroy_by}; no signed destruction "
                   "certificate has been collected",
                   f"ask {recipient}'s IG contact to destroy it and return the certificate; "
                   "`transfers certificates` lists every disclosure past its destroy-by."),
        to=tuple(ref.agreement.contacts_of("ig", ref.agreement.retention.controller)),
    )


_INCIDENT_WHAT = {
    "host-key-mismatch": "an SFTP server offered a host key that is not the pinned one (a changed server or "
                         "someone in the middle); nothing was sent to or read from it",
    "signature-failed": "a signature did not verify (unsigned, signed by another key, or the signed file was "
                        "changed); what it covered was refused, never loaded or counted",
    "key-revoked": "a key was refused because its owner revoked it (it may have been compromised); nothing "
                   "was encrypted to or verified with it",
    "subject-after-withdrawal": "a subject whose withdrawal notice was already sent to the recipients appeared "
                                "again in an extract; the row was excluded, check the source's withdrawals",
}


def incident_alert(agreement: Agreement, incident: Incident) -> Alert:
    """A security incident for breach assessment (ISP protocol §6.2): the IG contacts of ``incident.party`` (the
    party that saw it), at once. It names what, where and the evidence (fingerprints, hashes, file names), never
    record values."""
    day = incident.logical_date.isoformat() if incident.logical_date else "(no logical date)"
    happened = _INCIDENT_WHAT.get(incident.what, incident.what)
    body = "\n".join([
        f"Agreement: {agreement.name} ({agreement.id})",
        f"Flow: {incident.flow or '(none)'}",
        f"Logical date: {day}",
        f"Incident: {incident.what}, seen by {incident.party or 'this party'}",
        f"Partner concerned: {incident.recipient or '(none)'}",
        f"Where: {incident.where or '(not recorded)'}",
        f"Evidence: {incident.evidence or '(none)'}",
        f"What happened: {happened}",
        f"Detail: {incident.detail[:_MAX_DETAIL] or '(none)'}",
        "Next step: assess it as a possible breach under your organisation's policy (ISP protocol 6.2); "
        "confirm keys with the partner by another channel before changing any pin or key. "
        "`transfers report ig` lists the period's incidents.",
        "",
        "This message carries no record values; the ledger holds this incident as an `incident` entry.",
    ])
    return Alert(kind="incident",
                 subject=f"[isp-transfers] SECURITY INCIDENT {incident.what}: {incident.flow or agreement.id} {day}",
                 body=body, to=tuple(agreement.contacts_of("ig", incident.party or None)))


def review_due(agreement: Agreement, today: date) -> bool:
    """Whether ``agreement``'s review falls within ``REVIEW_WARNING_DAYS`` of ``today`` (and has not passed)."""
    return 0 <= (agreement.review_by - today).days <= REVIEW_WARNING_DAYS


def review_due_alert(agreement: Agreement, today: date) -> Alert:
    """An agreement due for review: every partner's IG contacts, before its flows stop on ``review_by``."""
    days = (agreement.review_by - today).days
    flows = ", ".join(f"{agreement.id}.{f.id}" for f in agreement.flows)
    body = "\n".join([
        f"Agreement: {agreement.name} ({agreement.id}), version {agreement.version}",
        f"Flows: {flows}",
        f"Date: {today}",
        "Stage: agreement review",
        f"What happened: the agreement is due for review by {agreement.review_by} ({days} day(s) from today); "
        "after that date every flow under it stops (the agreement lapses).",
        "Next step: review the agreement with the partners, update review_by (and version, revisions), "
        "and have every partner sign the new file (`transfers agreement sign`).",
        "",
        "This message carries no record values.",
    ])
    return Alert(kind="review-due", subject=f"[isp-transfers] agreement {agreement.id}: review due by "
                 f"{agreement.review_by}", body=body, to=tuple(agreement.contacts_of("ig")))


def _transfer_error(error: BaseException | None) -> TransferError | None:
    """Our error behind ``error``: itself, or the one the DAG layer re-raised as Airflow's (``raise ... from None``
    keeps it as ``__context__``)."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, TransferError):
            return error
        error, seen = error.__cause__ or error.__context__, seen + 1
    return None


def daily_alerts(config: Config, ledger: Ledger, today: date, *, grace_days: int,
                 now: datetime | None = None) -> list[tuple[str, Alert]]:
    """The day's alerts with the key each is sent once under (see ``claim_once``): each agreement due for
    review (once per agreement per day), each disclosure whose destruction certificate is overdue (once per
    delivery per day). Disclosures are read from this party's ledger, so only a sender sees them."""
    from transfers.reports.destruction import destruction_statuses

    out = [(f"review-due {item.agreement.id} {today}", review_due_alert(item.agreement, today))
           for item in sorted(config.agreements, key=lambda a: a.agreement.id) if review_due(item.agreement, today)]
    known = {ref.key: ref for ref in config.flows()}
    for state in destruction_statuses(ledger, config, grace_days=grace_days, now=now or datetime.now(UTC)):
        if state.status == "overdue" and state.flow in known and state.destroy_by is not None:
            alert = certificate_overdue_alert(known[state.flow], state.logical_date, state.recipient, state.destroy_by)
            out.append((f"certificate-overdue {state.delivery_id} {today}", alert))
    return out
