"""The IG officer's evidence report: what was disclosed, on what basis, and what was destroyed.

``transfers report ig --from D --to D`` writes one self-contained HTML page (inline
CSS, no script, no URL: it is opened on locked-down office machines) and one CSV
per section. Everything comes from the ledger and the config, plus a listing of
what is held now (``transfers.retention.inventory``); no record value is read.

Sections:
    disclosures     by agreement, flow, recipient and month: purposes, legal basis, rows, fields
    receipts        each disclosure: acknowledged by the recipient's signed receipt (when, by which key),
                    rejected (its reason), or unacknowledged (pending, or overdue past receipt_within);
                    its destroy-by and destruction state
    destruction     every disclosure (whenever made) past its destroy-by as at the report: destroyed at the
                    recipient (its verified certificate's SHA-256), awaiting, or overdue (no certificate
                    TRANSFERS_DESTRUCTION_GRACE_DAYS after destroy-by), highlighted
    without_consent each share without consent: legal basis, ground, justification, rows
    purges          a certificate of destruction per deleted copy (and failed attempts)
    destroyed       (a recipient) each received delivery destroyed on the controller's date, rows and rule
    holds           legal holds in force: what each keeps from destruction, why, by whom, since when
    held            every copy held now with its due date; overdue ones highlighted
    agreements      agreements lapsed or due for review within 30 days
    incidents       security incidents recorded in the period (ISP protocol 6.2), highlighted: what, where, the
                    partner concerned, the evidence, and whether the IG contact was told at once

and after them (built in ``transfers.reports.ig_evidence``, which describes each):
    consent_exclusions    records left out per flow and month, by reason (withdrawn, withdrawn by notice,
                          restricted, opted out, deceased)
    notices               withdrawal and correction notices sent, and their recipients' confirmations
    flow_bases            each flow's own basis: consent, or its statutory legal basis and exceptional ground
    field_sharing         how each field of each flow is shared (kept, pseudonymised, generalised to year, ...)
    pseudonym_keys        the pseudonym key ids in use per flow (ids only, never key material), and
    pseudonym_key_events  each key's first use and rotations
    ledger_verification   the ledger's verification result and the head it covers
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from transfers.agreement import Config
from transfers.files import write_atomic
from transfers.ledger.records import Destroyed, Disclosure, Incident, Purged, PurgeFailed, SharedWithoutConsent, stamp
from transfers.reports.destruction import DisclosureDestruction, destruction_of
from transfers.reports.figures import disclosures_per_month
from transfers.reports.ig_evidence import CSV_COLUMNS as _EVIDENCE_CSV
from transfers.reports.ig_evidence import evidence
from transfers.reports.reading import read_period
from transfers.reports.receipts import DisclosureReceipt, receipts_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from transfers.connections import ConnInfo
    from transfers.ledger import Ledger
    from transfers.settings import Settings

REVIEW_WINDOW_DAYS = 30

_env = Environment(loader=PackageLoader("transfers.reports", "templates"), autoescape=True,
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_text(v)}" for k, v in value.items())
    return str(value)


def build(settings: Settings, config: Config, ledger: Ledger, start: date, end: date, *,
          now: datetime | None = None, connection: Callable[[str], ConnInfo] | None = None) -> dict[str, Any]:
    """The report's figures as plain data (what the HTML and the CSVs show).

    Args:
        start, end: Inclusive dates; entries recorded in this range are reported.
        now: The moment "held now", "overdue" and "due for review" are judged at.
        connection: Resolves S3 archives' connections, so their manifests' ledger heads are checked too.
    """
    from transfers.retention import inventory
    from transfers.retention.holds import holds_of

    now = now or datetime.now(UTC)
    since = datetime.combine(start, time.min, UTC)
    until = datetime.combine(end + timedelta(days=1), time.min, UTC)
    names = config.protocol.name_of
    disclosures: dict[tuple, dict] = {}
    without: list[dict] = []
    purges: list[dict] = []
    failures: list[dict] = []
    destroyed: list[dict] = []
    incidents: list[dict] = []
    # The ledger read once for everything below but the chain check and the copies held now (see ``reading``).
    read = read_period(ledger, since, until)
    for record in read.period:
        entry = record.entry
        assert entry is not None  # read back: every record has its entry
        if isinstance(record, Disclosure):
            month = (entry.logical_date or entry.at.date()).strftime("%Y-%m")
            group = disclosures.setdefault((entry.agreement, entry.flow, entry.recipient, month), {
                "agreement": entry.agreement, "flow": entry.flow, "recipient": entry.recipient,
                "recipient_name": names(entry.recipient or ""), "period": month, "disclosures": 0, "rows": 0,
                "purposes": [], "legal_basis": [], "fields": [], "first": None, "last": None, "seqs": []})
            group["disclosures"] += 1
            group["rows"] += record.rows
            for key, values in (("purposes", record.purposes), ("legal_basis", record.legal_basis),
                                ("fields", record.fields)):
                group[key] += [v for v in values if v not in group[key]]
            day = (entry.logical_date or entry.at.date()).isoformat()
            group["first"] = min(group["first"] or day, day)
            group["last"] = max(group["last"] or day, day)
            group["seqs"].append(entry.seq)
        elif isinstance(record, SharedWithoutConsent):
            without.append({"seq": entry.seq, "at": entry.at.isoformat(timespec="seconds"), "agreement": entry.agreement,
                            "flow": entry.flow, "logical_date": entry.logical_date.isoformat() if entry.logical_date
                            else "", "legal_basis": _text(record.legal_basis), "ground": _text(record.ground),
                            "justification": _text(record.justification), "rows": record.rows,
                            "override_opt_outs": record.override_opt_outs})
        elif isinstance(record, Purged):
            purges.append({"seq": entry.seq, "hash": entry.hash, "agreement": entry.agreement, "flow": entry.flow,
                           "recipient": entry.recipient or "", "place": record.place, "store": record.store,
                           "path": record.path, "size": record.size, "sha256": record.sha256,
                           "created": stamp(record.created), "due": stamp(record.due),
                           "deleted_at": stamp(record.deleted_at), "rule": record.rule, "verified": record.verified,
                           "note": record.note, "versions_deleted": record.versions_deleted})
        elif isinstance(record, Destroyed):
            destroyed.append({"seq": entry.seq, "flow": entry.flow, "delivery_id": record.delivery_id,
                              "sender": record.sender, "sender_name": names(record.sender), "place": record.place,
                              "rows": record.rows, "held_rows": record.held_rows, "complete": record.complete,
                              "destroy_by": record.destroy_by or "", "destroyed_at": stamp(record.destroyed_at),
                              "rule": record.rule, "verified": record.verified})
        elif isinstance(record, Incident):
            incidents.append({"seq": entry.seq, "at": entry.at.isoformat(timespec="seconds"),
                              "agreement": entry.agreement, "flow": entry.flow or "",
                              "logical_date": _day(entry.logical_date), "what": record.what, "party": record.party,
                              "partner": entry.recipient or "", "partner_name": names(entry.recipient or ""),
                              "where": record.where, "evidence": record.evidence, "detail": record.detail,
                              "notified": record.notified, "notice": record.notice})
        elif isinstance(record, PurgeFailed):
            failures.append({"seq": entry.seq, "flow": entry.flow, "place": record.place, "path": record.path,
                             "due": stamp(record.due), "attempted_at": stamp(record.attempted_at),
                             "error": record.error})
    grace = settings.destruction_grace_days
    everything = destruction_of(config, read.disclosures, read.answers, grace_days=grace, now=now)
    states = {d.delivery_id: d for d in everything}
    receipts = [_receipt_row(r, names, states.get(r.delivery_id))
                for r in receipts_of(config, read.of(Disclosure), read.answers, now=now)]
    destruction = [_destruction_row(d, names) for d in everything if d.past_destroy_by]
    destruction.sort(key=lambda d: (d["status"] != "overdue", d["destroy_by"], d["flow"], d["recipient"]))
    for row in receipts:
        counted = disclosures.get((row["agreement"], row["flow"], row["recipient"], row["logical_date"][:7]))
        if counted is not None:
            counted[row["status"]] = counted.get(row["status"], 0) + 1
    # Legal holds in force: what they keep from destruction and why (a subject is never named).
    holds = [{"seq": h.seq, "scope": h.scope, "agreement": h.agreement,
              "target": h.target if h.scope == "delivery" else "one subject (pseudonym in the ledger entry)",
              "reason": h.reason, "by": h.by, "since": stamp(h.since)} for h in holds_of(read.answers)]
    held = []
    for item in inventory(settings, config, ledger):
        held.append({"place": item.place, "store": item.store, "flow": item.flow, "path": item.path,
                     "recipient": item.recipient or "", "created": item.created.isoformat(timespec="seconds"),
                     "due": item.due.isoformat(timespec="seconds"), "rule": item.rule,
                     "overdue": item.is_due(now), "days_left": (item.due - now).days})
    held.sort(key=lambda h: (not h["overdue"], h["due"]))
    today = now.date()
    agreements = []
    for loaded in sorted(config.agreements, key=lambda a: a.agreement.id):
        a = loaded.agreement
        status = ("lapsed" if a.review_by < today else
                  "due for review" if a.review_by <= today + timedelta(days=REVIEW_WINDOW_DAYS) else
                  "not yet in force" if a.in_force > today else "in force")
        agreements.append({"id": a.id, "name": a.name, "version": a.version, "in_force": a.in_force.isoformat(),
                           "review_by": a.review_by.isoformat(), "status": status,
                           "days_to_review": (a.review_by - today).days, "file": loaded.path.name})
    # Last, so the ledger's verification covers every entry read above.
    more = evidence(settings, config, ledger, since, until, connection=connection, read=read)
    return {
        **more,
        "from": start.isoformat(), "to": end.isoformat(), "generated": now.isoformat(timespec="seconds"),
        "disclosures": sorted(disclosures.values(), key=lambda g: (g["agreement"], g["flow"] or "",
                                                                    g["recipient"] or "", g["period"])),
        "receipts": receipts, "destruction": destruction, "grace_days": grace, "without_consent": without,
        "purges": purges, "destroyed": destroyed, "holds": holds, "purge_failures": failures, "held": held,
        "agreements": agreements, "incidents": incidents,
        "totals": {"incidents": len(incidents),
                   "incidents_not_notified": sum(1 for i in incidents if not i["notified"]),"disclosures": sum(g["disclosures"] for g in disclosures.values()),
                   "rows": sum(g["rows"] for g in disclosures.values()),
                   "acknowledged": sum(1 for r in receipts if r["status"] == "acknowledged"),
                   "rejected": sum(1 for r in receipts if r["status"] == "rejected"),
                   "unacknowledged": sum(1 for r in receipts if r["status"] in ("pending", "overdue")),
                   "receipts_overdue": sum(1 for r in receipts if r["status"] == "overdue"),
                   "destroyed_at_recipients": sum(1 for d in destruction if d["status"] == "destroyed"),
                   "destruction_awaiting": sum(1 for d in destruction if d["status"] == "awaiting"),
                   "destruction_overdue": sum(1 for d in destruction if d["status"] == "overdue"),
                   "without_consent": len(without), "without_consent_rows": sum(w["rows"] for w in without),
                   "purged": len(purges), "destroyed": len(destroyed), "holds": len(holds),
                   "purge_failures": len(failures), "held": len(held),
                   "overdue": sum(1 for h in held if h["overdue"]),
                   "lapsed": sum(1 for a in agreements if a["status"] == "lapsed"),
                   "due_for_review": sum(1 for a in agreements if a["status"] == "due for review")},
    }


def _receipt_row(r: DisclosureReceipt, names: Any, destruction: DisclosureDestruction | None) -> dict[str, Any]:
    """One disclosure's receipt (and destruction state), as the report's table and CSV show it."""
    return {"agreement": r.agreement, "flow": r.flow, "logical_date": r.logical_date, "recipient": r.recipient,
            "recipient_name": names(r.recipient), "delivered_at": stamp(r.delivered_at), "rows": r.rows,
            "status": r.status, "acknowledged_at": stamp(r.acknowledged_at), "signer": r.signer_fingerprint or "",
            "receipt_sha256": r.receipt_sha256 or "", "reason": r.reason, "due_by": stamp(r.due_by),
            "refused_receipts": r.refused_receipts, "seq": r.disclosure_seq,
            "destroy_by": _day(destruction.destroy_by) if destruction else "",
            "destruction": destruction.status if destruction else "",
            "certificate_sha256": (destruction.certificate_sha256 or "") if destruction else ""}


def _destruction_row(d: DisclosureDestruction, names: Any) -> dict[str, Any]:
    """One disclosure past its destroy-by, as the destruction table and CSV show it."""
    return {"agreement": d.agreement, "flow": d.flow, "logical_date": d.logical_date, "recipient": d.recipient,
            "recipient_name": names(d.recipient), "controller": d.controller, "rows": d.rows,
            "destroy_by": _day(d.destroy_by), "overdue_from": _day(d.overdue_from), "status": d.status,
            "destroyed_at": d.destroyed_at or "", "certificate_sha256": d.certificate_sha256 or "",
            "signer": d.signer_fingerprint or "", "rule": d.rule, "refused_certificates": d.refused_certificates,
            "detail": d.detail(), "seq": d.disclosure_seq, "certified_seq": d.certified_seq}


def _day(day: date | None) -> str:
    return day.isoformat() if day else ""


def render_html(doc: dict) -> str:
    return _env.get_template("ig.html.j2").render(doc=doc, disclosure_charts=disclosures_per_month(doc))


_CSV = {
    "disclosures": ["agreement", "flow", "recipient", "recipient_name", "period", "disclosures", "rows", "purposes",
                    "legal_basis", "fields", "first", "last", "seqs"],
    "receipts": ["agreement", "flow", "logical_date", "recipient", "delivered_at", "rows", "status", "acknowledged_at",
                 "signer", "receipt_sha256", "reason", "due_by", "refused_receipts", "seq", "destroy_by", "destruction",
                 "certificate_sha256"],
    "destruction": ["agreement", "flow", "logical_date", "recipient", "controller", "rows", "destroy_by",
                    "overdue_from", "status", "destroyed_at", "certificate_sha256", "signer", "rule",
                    "refused_certificates", "seq", "certified_seq"],
    "without_consent": ["seq", "at", "agreement", "flow", "logical_date", "legal_basis", "ground", "justification",
                        "rows", "override_opt_outs"],
    "purges": ["seq", "hash", "agreement", "flow", "recipient", "place", "store", "path", "size", "sha256", "created",
               "due", "deleted_at", "rule", "verified", "versions_deleted", "note"],
    "purge_failures": ["seq", "flow", "place", "path", "due", "attempted_at", "error"],
    "destroyed": ["seq", "flow", "delivery_id", "sender", "place", "rows", "held_rows", "complete", "destroy_by",
                  "destroyed_at", "rule", "verified"],
    "holds": ["seq", "scope", "agreement", "target", "reason", "by", "since"],
    "held": ["place", "store", "flow", "path", "recipient", "created", "due", "rule", "overdue", "days_left"],
    "agreements": ["id", "name", "version", "in_force", "review_by", "status", "days_to_review", "file"],
    "incidents": ["seq", "at", "what", "agreement", "flow", "logical_date", "party", "partner", "where", "evidence",
                  "notified", "notice", "detail"],
    **_EVIDENCE_CSV,
}


def render_csv(doc: dict, section: str) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_CSV[section], extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in doc[section]:
        writer.writerow({k: _text(v) if isinstance(v, list | tuple | dict) else v for k, v in row.items()})
    return out.getvalue()


def write_ig_report(doc: dict, out_dir: Path) -> list[Path]:
    """Write ``ig_<from>_<to>.html`` and one CSV per section; returns the paths, HTML first."""
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stem = f"ig_{doc['from']}_{doc['to']}"
    html = out_dir / f"{stem}.html"
    write_atomic(html, render_html(doc).encode("utf-8"))
    paths = [html]
    for section in _CSV:
        path = out_dir / f"{stem}_{section}.csv"
        write_atomic(path, render_csv(doc, section).encode("utf-8"))
        paths.append(path)
    return paths
