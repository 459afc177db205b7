"""The IG report's account of each flow from its agreement: its basis, how each field is shared, its pseudonym key.

Each is what the agreement says now, set beside what the period's ledger entries recorded (runs on each basis,
disclosures that carried each field, key ids disclosures were made under). Ids, names and counts only: never a
key, a key fingerprint or a record value. Called by :func:`transfers.reports.ig_evidence.evidence`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from transfers.agreement import Config, SubjectSource
from transfers.agreement_doc import how_shared, sharing_basis
from transfers.ledger.records import Disclosure, PrivacyResult, PseudonymKey, stamp
from transfers.ledger.records.base import ds_of


def _subject_list(source: SubjectSource | None) -> str:
    if source is None:
        return ""
    return f"{source.kind} {source.path or source.table} (connection {source.connection})"


def flow_bases(config: Config, runs: Iterable[PrivacyResult], without: Counter[str]) -> list[dict[str, Any]]:
    """Each flow's own basis from the agreement, and the bases its runs recorded in the period."""
    recorded: dict[str, Counter[str]] = {}
    for run in runs:
        recorded.setdefault(run.flow or "", Counter())[run.basis or "unrecorded"] += 1
    names = config.protocol.name_of
    rows = []
    for ref in config.flows():
        flow, basis = ref.flow, ref.flow.consent
        seen = recorded.get(ref.key, Counter())
        rows.append(
            {
                "agreement": ref.agreement.id,
                "flow": ref.key,
                "name": flow.name,
                "sender": names(flow.from_),
                "recipients": [names(r.partner) for r in flow.to],
                **sharing_basis(flow, config.protocol),
                "consent_register": _subject_list(basis.consent_register),
                "opt_outs": _subject_list(basis.opt_outs),
                "deceased": flow.deceased.handling.replace("_", " ") if flow.deceased else "not checked",
                "runs": sum(seen.values()),
                "runs_consent": seen["consent"],
                "runs_statutory": seen["statutory"],
                "shares_without_consent": without[ref.key],
            }
        )
    return rows


def field_sharing(config: Config, disclosures: list[Disclosure]) -> list[dict[str, Any]]:
    """How each field of each flow is shared (the agreement's rule), and how many disclosures carried it."""
    carried: dict[str, Counter[str]] = {}
    made: Counter[str] = Counter()
    for disclosure in disclosures:
        made[disclosure.flow or ""] += 1
        carried.setdefault(disclosure.flow or "", Counter()).update(disclosure.fields)
    rows = []
    for ref in config.flows():
        setting = ref.agreement.pseudonymisation
        quasi = ref.flow.disclosure_risk.quasi_identifiers if ref.flow.disclosure_risk else []
        for name, spec in ref.flow.fields.items():
            rows.append(
                {
                    "agreement": ref.agreement.id,
                    "flow": ref.key,
                    "field": name,
                    "share": spec.share,
                    "how": how_shared(spec),
                    "subject": name == ref.flow.subject,
                    "quasi_identifier": name in quasi,
                    "key_id": setting.key_id if setting and spec.share == "pseudonymise" else "",
                    "disclosures": carried.get(ref.key, Counter())[name],
                    "period_disclosures": made[ref.key],
                }
            )
    return rows


def pseudonym_keys(config: Config, disclosures: list[Disclosure]) -> list[dict[str, Any]]:
    """Per flow, each pseudonym key id its disclosures were made under, and the key id configured now."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(flow: str, agreement: str, key_id: str) -> dict[str, Any]:
        return rows.setdefault(
            (flow, key_id),
            {
                "agreement": agreement,
                "flow": flow,
                "key_id": key_id,
                "domain": "",
                "configured": False,
                "pseudonymised_fields": [],
                "disclosures": 0,
                "recipients": [],
                "first": None,
                "last": None,
            },
        )

    for ref in config.flows():
        setting = ref.agreement.pseudonymisation
        fields = [n for n, s in ref.flow.fields.items() if s.share == "pseudonymise"]
        if setting is None:
            continue
        now = row(ref.key, ref.agreement.id, setting.key_id)
        now.update(configured=True, domain=setting.linkage_domain or ref.agreement.id, pseudonymised_fields=fields)
    for disclosure in disclosures:
        if not disclosure.pseudonym_key_id:
            continue
        used = row(disclosure.flow or "", disclosure.agreement, disclosure.pseudonym_key_id)
        used["disclosures"] += 1
        recipient = config.protocol.name_of(disclosure.recipient) if disclosure.recipient else ""
        if recipient and recipient not in used["recipients"]:
            used["recipients"].append(recipient)
        day = ds_of(disclosure)
        used["first"] = min(used["first"] or day, day)
        used["last"] = max(used["last"] or day, day)
    return sorted(rows.values(), key=lambda r: (r["agreement"], r["flow"], r["first"] or "", r["key_id"]))


def key_event(event: PseudonymKey) -> dict[str, Any]:
    previous = event.previous or {}
    return {
        "seq": event.seq,
        "at": stamp(event.at),
        "agreement": event.agreement,
        "flow": event.flow or "",
        "logical_date": ds_of(event),
        "domain": event.domain,
        "event": event.event,
        "key_id": event.key_id or "",
        "previous_key_id": previous.get("key_id") or "",
        # A rotation that kept its id shows as such; the fingerprints themselves stay in the ledger.
        "key_changed_under_same_id": bool(previous) and previous.get("key_id") == event.key_id,
    }
