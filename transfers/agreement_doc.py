"""The Tier 2 agreement as the document IG signs, in the layout of Appendix C of the protocol.

``transfers agreement render ID [--format html|md]`` renders one agreement YAML,
the same file the DAGs run, so the signed document and what runs cannot drift.
Appendix C's sections, in its order: the cover (name, purpose, data sets,
risks and mitigation, partners, security, dates, drawn up by, revisions,
owners), then 1 Aim, 2 Pre-requisites, 3 Why we share, 4 Legal basis, 5 What
is shared (each data flow, its fields and how each is shared, how and when),
6 Retention, 7 Quality assurance, 8 Renewal, and a signature block per partner.
Ids from the agreement are shown with their names from the Tier 1 register.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from transfers.agreement import Config, FieldSpec, Flow, Protocol, Source

#: Appendix C's sections, as (anchor, heading); the templates render them in this order.
SECTIONS = (
    ("cover", "Tier 2: Data Sharing Agreement"),
    ("aim", "1 Aim"),
    ("prerequisites", "2 Pre Requisites"),
    ("why", "3 Why do we need to share information?"),
    ("legal-basis", "4 Legal basis"),
    ("what", "5 What information is to be shared?"),
    ("retention", "6 Retention of information"),
    ("quality", "7 Quality Assurance"),
    ("renewal", "8 Renewal of the service specific protocol"),
    ("signatures", "Signatures"),
)

_PLACES = {
    "staging": "Sender's working files and encrypted outbox",
    "archive": "Sender's archive of encrypted deliveries",
    "remote": "Copy on the recipient's SFTP server until collected",
    "reports": "Data owner's quality reports",
    "notices": "Rectification and withdrawal notices",
    "logs": "Run logs",
}

_SHARE = {
    "keep": "shared as held",
    "pseudonymise": "pseudonymised (keyed HMAC-SHA256; the recipient never sees the identifier)",
    "generalise": "generalised",
    "mask": "masked",
    "drop": "not shared",
}


_CSV = {
    True: "Delivered as CSV (UTF-8). A value a spreadsheet would run as a formula (one starting with =, +, -, @, "
          "a tab, CR or LF) is sent with an apostrophe (') in front, as OWASP advises against formula injection; "
          "plain numbers such as -3, and pseudonyms, are sent as they are.",
    False: "Delivered as CSV (UTF-8) with every value exactly as held: formula escaping is switched off for this "
           "flow (csv: formula_escape: false) because the recipient loads the file into a database, not a "
           "spreadsheet; a value starting with =, +, -, @ must not be opened in a spreadsheet.",
}


def how_shared(spec: FieldSpec) -> str:
    """How a field is shared, in words: ``generalised to postcode district``, ``not shared`` (the agreement
    document and the IG report say it the same way)."""
    text = _SHARE.get(spec.share, spec.share)
    if spec.share == "generalise" and spec.to:
        level = {"age_band": "age band", "year": "year", "month": "month", "district": "postcode district",
                 "sector": "postcode sector"}.get(spec.to, spec.to)
        text += f" to {level}"
        if spec.to == "age_band" and spec.bands:
            text += f" (bands from {', '.join(map(str, spec.bands))})"
    if spec.share == "mask" and spec.keep_last:
        text += f" (last {spec.keep_last} characters visible)"
    return text


def _checks(spec: FieldSpec) -> str:
    c = spec.checks
    parts = []
    if c.required:
        parts.append("required" if c.required is True else f"present in at least {c.required:.0%}")
    for flag, words in (("unique", "unique"), ("nhs_number", "valid NHS number"), ("not_future", "not in the future")):
        if getattr(c, flag):
            parts.append(words)
    if c.format:
        parts.append(f"format {c.format}")
    if c.in_:
        parts.append("one of " + ", ".join(map(str, c.in_)))
    if c.recent:
        parts.append(f"recent ({c.recent})")
    return "; ".join(parts)


def describe_source(source: Source) -> str:
    """Where the flow's extract is read from, for the reader of the agreement (``{ds}``: the logical date)."""
    def dated(template: str) -> str:
        return template.replace("{ds}", "YYYY-MM-DD").replace("{ds_nodash}", "YYYYMMDD")

    if source.kind == "sql":
        return f"Extracted from the sender's database (connection {source.connection}) by the query {source.query}."
    if source.kind == "csv":
        return (f"Extracted from the sender's export file {dated(source.path or '')} (connection {source.connection}), "
                "the date in its name being the run's logical date.")
    return (f"Extracted from the object {dated(source.key or '')} ({(source.object_format or 'csv').upper()}) in the "
            f"S3 bucket {source.bucket} (connection {source.connection}), the date in its key being the run's logical date; "
            "each run reads one version of it and records its version id and ETag in the ledger.")


def sharing_basis(flow: Flow, protocol: Protocol) -> dict[str, Any]:
    """The flow's own basis for sharing: ``consent``, or ``statutory`` with its legal basis and exceptional
    ground (names from the Tier 1 register; ``legal_basis_id`` and ``ground_id`` keep the ids)."""
    basis = flow.consent
    if basis.basis == "statutory":
        legal = protocol.legal_basis(basis.legal_basis or "")
        ground = next((g for g in protocol.exceptional_grounds if g.id == basis.ground), None)
        return {"basis": "statutory", "legal_basis": legal.name if legal else basis.legal_basis,
                "legal_basis_id": basis.legal_basis, "ground": ground.name if ground else basis.ground,
                "ground_id": basis.ground, "justification": basis.justification,
                "override_opt_outs": basis.override_opt_outs}
    return {"basis": "consent", "legal_basis": None, "legal_basis_id": None, "ground": None, "ground_id": None,
            "justification": None, "override_opt_outs": False}


def _flow(flow: Flow, protocol: Protocol) -> dict[str, Any]:
    r = flow.retention
    places = [{"place": _PLACES["staging"], "period": r.staging}]
    if r.archive is not None:
        where = f"S3 bucket {r.archive.bucket}" if r.archive.bucket else f"directory {r.archive.dir}"
        places.append({"place": f"{_PLACES['archive']} ({where})", "period": r.archive.period})
    places.append({"place": _PLACES["remote"] + ("" if r.remote.sender_may_remove else
                                                 " (removed by the recipient; the sender may not)"),
                   "period": r.remote.period})
    places += [{"place": _PLACES[k], "period": getattr(r, k)} for k in ("reports", "notices", "logs")]
    return {
        "id": flow.id, "name": flow.name, "from": protocol.name_of(flow.from_),
        "to": [protocol.name_of(t.partner) for t in flow.to],
        "recipients": [{"partner": protocol.name_of(t.partner), "fingerprint": t.pgp_fingerprint, "path": t.path}
                       for t in flow.to],
        "schedule": flow.schedule, "timezone": flow.timezone, "subject": flow.subject,
        "fields": [{"name": name, "share": spec.share, "how": how_shared(spec), "checks": _checks(spec)}
                   for name, spec in flow.fields.items()],
        "shared": flow.shared_fields, "retention": places, "sharing": sharing_basis(flow, protocol),
        "quality": [{"dimension": d.name, "meaning": d.meaning or "", "on_failure": flow.quality.policy(d.id)}
                    for d in protocol.quality_characteristics],
        "deceased": flow.deceased.handling.replace("_", " ") if flow.deceased else None,
        "min_k": flow.disclosure_risk.min_k if flow.disclosure_risk else None,
        "csv": _CSV[flow.csv.formula_escape],
        "source": describe_source(flow.source),
    }


def document(config: Config, agreement_id: str, keys_dir: Path | None = None) -> dict[str, Any]:
    """The agreement's content, section by section, with register ids replaced by names.

    With ``keys_dir`` (the partners' public keys), each signature block says who signed
    this exact version of the file, with which key and when, or "not signed".
    """
    from transfers.agreement.signoff import agreement_sha256, signoffs

    loaded = config.agreement(agreement_id)
    a, protocol = loaded.agreement, config.protocol
    signed = {s.partner: s for s in signoffs(loaded.path, a, protocol, keys_dir)} if keys_dir is not None else {}
    named = lambda items, lookup: [  # noqa: E731
        {"id": i, "name": (lookup(i).name if lookup(i) else i),
         "section": getattr(lookup(i), "section", None) if lookup(i) else None} for i in items]
    return {
        "id": a.id, "name": a.name, "version": a.version, "file": loaded.path.name,
        "protocol": protocol.protocol.name, "protocol_version": protocol.protocol.version,
        "purpose": a.purpose, "purposes": named(a.purposes, protocol.purpose),
        "legal_basis": named(a.legal_basis, protocol.legal_basis),
        "partners": [{"id": p, "name": protocol.name_of(p)} for p in a.partners],
        "owners": [{"partner": protocol.name_of(o.partner), "role": o.role} for o in a.owners],
        "drawn_up_by": a.drawn_up_by, "in_force": a.in_force.isoformat(), "review_by": a.review_by.isoformat(),
        "security": a.security,
        "controller": protocol.name_of(a.retention.controller), "controller_period": a.retention.period,
        "procedure": a.retention.procedure,
        "revisions": [{"date": r.date.isoformat(), "details": r.details} for r in a.revisions],
        "flows": [_flow(f, protocol) for f in a.flows],
        "pseudonym_key_id": a.pseudonymisation.key_id if a.pseudonymisation else None,
        # One signature block per partner, as Appendix C ends with one "Signed ... Date" per party.
        "signatories": [{"partner": protocol.name_of(p), "role": next((o.role for o in a.owners if o.partner == p), ""),
                         "signoff": _signoff(signed.get(p)) if keys_dir is not None else None}
                        for p in a.partners],
        "sha256": agreement_sha256(loaded.path),
        "signed_checked": keys_dir is not None,
        "sections": SECTIONS,
    }


def _signoff(found: Any) -> dict[str, str] | None:
    """A signature block's sign-off: fingerprint and UTC time of a valid signature, or None (not signed)."""
    if found is None or not found.signed:
        return None
    return {"fingerprint": " ".join(found.fingerprint[i:i + 4] for i in range(0, 40, 4)),
            "at": found.signed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def _md(value: Any) -> str:
    """A value safe inside a Markdown table cell or line."""
    text = str(value if value is not None else "").replace("|", "\\|").replace("\n", " ")
    # Markdown viewers pass HTML through: a value must not become markup. Not markupsafe.escape:
    # it also turns quotes into &#39;/&#34;, which the Markdown file is read as text with ("Children's").
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# HTML templates are escaped; Markdown ones escape through the ``md`` filter instead.
_env = Environment(loader=PackageLoader("transfers.reports", "templates"),
                   autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=True),
                   undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
_env.filters["md"] = _md


def render(config: Config, agreement_id: str, fmt: str = "html", keys_dir: Path | None = None) -> str:
    """The agreement as ``html`` (self-contained, printable) or ``md``.

    Raises:
        ConfigError: No agreement with that id.
        ValueError: ``fmt`` is not html or md.
    """
    if fmt not in ("html", "md"):
        raise ValueError(f"format {fmt!r}: use html or md")
    return _env.get_template(f"agreement.{fmt}.j2").render(doc=document(config, agreement_id, keys_dir))
