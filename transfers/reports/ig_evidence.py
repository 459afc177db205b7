"""The IG report's evidence of how each flow shares: consent exclusions, notices, bases, fields, keys, the ledger.

The sections :mod:`transfers.reports.ig` adds after its own, each from the ledger and the config only
(counts, ids, field names, hashes; never a record value, an identifier, a pseudonym or key material).
Each is a key of the report's data and a CSV (``CSV_COLUMNS``):

    consent_exclusions    records left out of each flow's runs by reason (consent withdrawn in the source's
                          register, withdrawn by notice to the sender, restricted, national data opt-out,
                          deceased), per month; from each run's ``privacy`` entry (the last of a (flow, date)
                          counts: a retry's screening is the one whose records were sent)
    notices               withdrawal and correction notices sent, per flow, recipient, kind and month, and how
                          many the recipient confirmed (signed confirmation verified), refused or not yet
    flow_bases            each flow's own basis: consent, or the statutory legal basis and exceptional ground
                          it relies on (not the agreement-wide legal bases), its registers and deceased
                          handling, and the basis its runs recorded in the period
    field_sharing         how each field of each flow is shared (kept, pseudonymised, generalised to year,
                          postcode district, masked, not shared), and how many of the period's disclosures
                          carried it
    pseudonym_keys        per flow, the pseudonym key ids its disclosures were made under and the one
                          configured now (ids only)
    pseudonym_key_events  the ledger's first-use and rotation entries of each linkage domain's key
    ledger_verification   the ledger's verification (chain, anchors, archived manifest heads) and the head it
                          covers

The three sections that describe flows from their agreement (bases, fields, keys) are built in
:mod:`transfers.reports.ig_flows`; all of them come from the one reading of the ledger the IG report makes
(:mod:`transfers.reports.reading`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from transfers.agreement import Config
from transfers.consent import REASONS, reason_label
from transfers.errors import TransferError
from transfers.ledger.records import (
    Disclosure,
    Notice,
    PrivacyResult,
    PseudonymKey,
    Record,
    SharedWithoutConsent,
    stamp,
)
from transfers.ledger.records.base import ds_of
from transfers.reports.ig_flows import field_sharing, flow_bases, key_event, pseudonym_keys
from transfers.reports.reading import PeriodRecords, read_period

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.ledger import Ledger
    from transfers.settings import Settings

#: Exclusion reasons as columns, in the order screening checks them (``transfers.consent.REASONS``).
REASON_COLUMNS = {reason: reason_label(reason) for reason in REASONS}

# fmt: off
CSV_COLUMNS = {
    "consent_exclusions": ["agreement", "flow", "period", "runs", "rows_screened", *REASONS, "other", "excluded",
                           "rows_sent", "overridden", "deceased_sent_with_caution", "unchecked_no_subject_id",
                           "bases", "seqs"],
    "notices": ["agreement", "flow", "recipient", "recipient_name", "notice", "period", "sent", "confirmed",
                "refused", "unconfirmed", "rows_confirmed", "fields", "first", "last", "references", "seqs"],
    "flow_bases": ["agreement", "flow", "name", "sender", "recipients", "basis", "legal_basis_id", "legal_basis",
                   "ground_id", "ground", "justification", "override_opt_outs", "consent_register", "opt_outs",
                   "deceased", "runs", "runs_consent", "runs_statutory", "shares_without_consent"],
    "field_sharing": ["agreement", "flow", "field", "share", "how", "subject", "quasi_identifier", "key_id",
                      "disclosures", "period_disclosures"],
    "pseudonym_keys": ["agreement", "flow", "key_id", "domain", "configured", "pseudonymised_fields", "disclosures",
                       "recipients", "first", "last"],
    "pseudonym_key_events": ["seq", "at", "agreement", "flow", "logical_date", "domain", "event", "key_id",
                             "previous_key_id", "key_changed_under_same_id"],
    "ledger_verification": ["status", "checked", "head_seq", "head_hash", "head_at", "anchor_file",
                            "external_anchor", "manifest_heads", "not_checked", "problems"],
}
# fmt: on


def _month(record: Disclosure | PrivacyResult | Notice) -> str:
    return (record.logical_date or record.when.date()).strftime("%Y-%m")


def evidence(
    settings: Settings,
    config: Config,
    ledger: Ledger,
    since: datetime,
    until: datetime,
    *,
    connection: Callable[[str], ConnInfo] | None = None,
    read: PeriodRecords | None = None,
) -> dict[str, Any]:
    """Every section above, and their totals, for entries recorded in ``[since, until)``.

    Args:
        connection: Resolves an S3 archive's connection so its manifests' ledger heads are checked too;
            without it such an archive is listed as not checked.
        read: The ledger already read for this period (the IG report's reading); read here when not given.
    """
    if read is None:
        read = read_period(ledger, since, until)
    privacy: dict[tuple[str, str], PrivacyResult] = {}
    disclosures: list[Disclosure] = []
    notices: list[Notice] = []
    key_events: list[PseudonymKey] = []
    without: Counter[str] = Counter()
    for record in read.period:
        if isinstance(record, PrivacyResult):
            # The period is in seq order, so a retried night's later attempt overwrites its earlier one.
            privacy[(record.flow or "", ds_of(record))] = record
        elif isinstance(record, Disclosure):
            disclosures.append(record)
        elif isinstance(record, Notice):
            notices.append(record)
        elif isinstance(record, PseudonymKey):
            key_events.append(record)
        elif isinstance(record, SharedWithoutConsent):
            without[record.flow or ""] += 1
    names = config.protocol.name_of
    exclusions = _exclusions(privacy.values())
    notice_rows = _notices(notices, read.answers, names)
    keys = pseudonym_keys(config, disclosures)
    check = ledger_check(settings, config, ledger, connection)
    excluded = {reason: sum(row[reason] for row in exclusions) for reason in (*REASONS, "other")}
    return {
        "consent_exclusions": exclusions,
        "reason_labels": REASON_COLUMNS,
        "notices": notice_rows,
        "flow_bases": flow_bases(config, privacy.values(), without),
        "field_sharing": field_sharing(config, disclosures),
        "pseudonym_keys": keys,
        "pseudonym_key_events": [key_event(e) for e in key_events],
        "ledger_verification": [check],
        "evidence_totals": {
            "excluded": sum(excluded.values()),
            "excluded_by_reason": excluded,
            "notices_sent": sum(r["sent"] for r in notice_rows),
            "withdrawal_notices": sum(r["sent"] for r in notice_rows if r["notice"] == "withdrawal"),
            "correction_notices": sum(r["sent"] for r in notice_rows if r["notice"] == "correction"),
            "notices_confirmed": sum(r["confirmed"] for r in notice_rows),
            "notices_unconfirmed": sum(r["unconfirmed"] + r["refused"] for r in notice_rows),
            "key_ids": sorted({k["key_id"] for k in keys if k["disclosures"]}),
            "key_rotations": sum(1 for e in key_events if e.event == "rotation"),
            "ledger_ok": check["status"] == "verified",
            "ledger_head_seq": check["head_seq"],
        },
    }


def _exclusions(runs: Iterable[PrivacyResult]) -> list[dict[str, Any]]:
    """One row per (flow, month): records each reason kept out, over the runs of that month."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r.seq or 0):
        row = groups.setdefault(
            (run.flow or "", _month(run)),
            {
                "agreement": run.agreement,
                "flow": run.flow or "",
                "period": _month(run),
                "runs": 0,
                "rows_screened": 0,
                **dict.fromkeys(REASONS, 0),
                "other": 0,
                "excluded": 0,
                "rows_sent": 0,
                "overridden": {},
                "deceased_sent_with_caution": 0,
                "unchecked_no_subject_id": 0,
                "bases": [],
                "seqs": [],
            },
        )
        row["runs"] += 1
        row["rows_screened"] += run.rows_screened
        row["rows_sent"] += run.rows_sent
        for reason, count in run.excluded.items():
            row[reason if reason in REASONS else "other"] += count
            row["excluded"] += count
        for reason, count in (run.opt_outs_overridden or {}).items():
            label = reason_label(reason)
            row["overridden"][label] = row["overridden"].get(label, 0) + count
        row["deceased_sent_with_caution"] += int((run.deceased or {}).get("sent_with_caution") or 0)
        row["unchecked_no_subject_id"] += run.unchecked_no_subject_id or 0
        if run.basis and run.basis not in row["bases"]:
            row["bases"].append(run.basis)
        row["seqs"].append(run.seq)
    return sorted(groups.values(), key=lambda r: (r["agreement"], r["flow"], r["period"]))


def _notices(
    notices: list[Notice], answers: Iterable[Record], names: Callable[[str], str]
) -> list[dict[str, Any]]:
    """One row per (flow, recipient, kind, month) of notices sent, with where their confirmations stand.

    ``answers`` holds every confirmation (and refused one) whenever recorded: one can come after the period.
    """
    from transfers.notice_confirmations import statuses_of

    if not notices:
        return []
    statuses = {(s.recipient, s.reference): s for s in statuses_of(notices, answers)}
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for notice in notices:
        status = statuses[(notice.recipient or "", notice.reference)]
        period = notice.when.strftime("%Y-%m")
        row = groups.setdefault(
            (notice.flow or "", notice.recipient or "", notice.notice, period),
            {
                "agreement": notice.agreement,
                "flow": notice.flow or "",
                "recipient": notice.recipient or "",
                "recipient_name": names(notice.recipient or ""),
                "notice": notice.notice,
                "period": period,
                "sent": 0,
                "confirmed": 0,
                "refused": 0,
                "unconfirmed": 0,
                "rows_confirmed": 0,
                "fields": [],
                "first": None,
                "last": None,
                "references": [],
                "seqs": [],
            },
        )
        row["sent"] += 1
        row[status.status] += 1
        row["rows_confirmed"] += status.rows
        row["fields"] += [f for f in notice.fields if f not in row["fields"]]
        sent = stamp(notice.when) or ""
        row["first"] = min(row["first"] or sent, sent)
        row["last"] = max(row["last"] or sent, sent)
        row["references"].append(notice.reference)
        row["seqs"].append(notice.seq)
    return sorted(groups.values(), key=lambda r: (r["agreement"], r["flow"], r["recipient"], r["notice"], r["period"]))


def ledger_check(
    settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo] | None = None
) -> dict[str, Any]:
    """``transfers ledger verify``'s chain check (hash chain, anchor file, external anchor, archived manifest
    heads) as one row: verified or FAILED, the head it covers, what it was compared with, the problems.

    Run after everything else the report reads, so every entry the report shows is at or before the head.
    """
    from transfers.retention.archive import manifest_heads

    not_checked: list[str] = []
    try:
        heads, unreadable, not_checked = manifest_heads(settings.home, config, connection)
    except TransferError as exc:  # an S3 archive's connection not set here: the chain and anchors still count
        heads, unreadable, not_checked = [], [], [f"archived manifests not read: {exc}"]
    report = ledger.verify(heads=heads)
    problems = report.problems + unreadable
    head = report.head
    anchor = ledger.anchor_path
    return {
        "status": "verified" if not problems else "FAILED",
        "checked": report.checked,
        "head_seq": head.seq if head else 0,
        "head_hash": head.hash if head else "",
        "head_at": stamp(head.at) if head else "",
        "anchor_file": str(anchor) if anchor is not None and anchor.exists() else "",
        "external_anchor": ledger.external_anchor.name if ledger.external_anchor is not None else "",
        "manifest_heads": len(heads),
        "not_checked": not_checked,
        "problems": problems,
    }
