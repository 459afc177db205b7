"""Loading config/: every problem in every file reported together; is an agreement live?"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from transfers.agreement.flow import Flow
from transfers.agreement.protocol import Protocol
from transfers.agreement.tier2 import Agreement
from transfers.durations import Duration
from transfers.errors import AgreementNotLive, ConfigError


@dataclass(frozen=True)
class LoadedAgreement:
    agreement: Agreement
    path: Path


@dataclass(frozen=True)
class FlowRef:
    """A flow with the agreement it belongs to; ``key`` is ``<agreement>.<flow>``."""

    agreement: Agreement
    flow: Flow
    path: Path

    @property
    def key(self) -> str:
        return f"{self.agreement.id}.{self.flow.id}"


@dataclass(frozen=True)
class Config:
    """Everything under a config directory, checked."""

    root: Path
    protocol: Protocol
    agreements: tuple[LoadedAgreement, ...]

    @property
    def keys_dir(self) -> Path:
        return self.root.parent / "keys"

    def flows(self) -> list[FlowRef]:
        return [
            FlowRef(item.agreement, flow, item.path)
            for item in sorted(self.agreements, key=lambda a: a.agreement.id)
            for flow in sorted(item.agreement.flows, key=lambda f: f.id)
        ]

    def flow(self, key: str) -> FlowRef:
        """Find a flow by ``<agreement>.<flow>`` (e.g. ``mash-referrals.A``)."""
        for ref in self.flows():
            if ref.key == key:
                return ref
        known = ", ".join(ref.key for ref in self.flows()) or "none"
        raise ConfigError(f"{self.root}: no flow {key!r} (flows: {known})")

    def agreement(self, agreement_id: str) -> LoadedAgreement:
        for item in self.agreements:
            if item.agreement.id == agreement_id:
                return item
        known = ", ".join(a.agreement.id for a in self.agreements) or "none"
        raise ConfigError(f"{self.root}: no agreement {agreement_id!r} (agreements: {known})")


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def _loc(loc: Iterable[Any], data: Any) -> str:
    """Render a pydantic error location as ``flows[0].to[1].partner``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _pydantic_problems(path: Path, exc: ValidationError, data: Any) -> list[str]:
    problems = []
    for err in exc.errors():
        # Drop pydantic's union/validator branch names so the path reads like the YAML.
        loc = [p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; allowed keys are in the agreement schema)"
        elif err["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{path}: {_loc(loc, data)}: {message}")
    return problems


def load_protocol(path: Path) -> Protocol:
    """Load and check the Tier 1 register."""
    data = _read_yaml(path)
    try:
        return Protocol.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_pydantic_problems(path, exc, data)) from None


def protocol_path(agreement_path: Path) -> Path:
    """The Tier 1 register beside an agreement's ``agreements/`` directory."""
    return agreement_path.parent.parent / "protocol.yaml"


def _cross_check(agreement: Agreement, protocol: Protocol, path: Path, today: date | None) -> list[str]:
    """Checks that need the Tier 1 register (and, for ``validate``, today's date)."""
    problems: list[str] = []
    where = f"{path}:"
    partners = set(agreement.partners)
    listed = ", ".join(agreement.partners)
    for i, partner in enumerate(agreement.partners):
        signatory = protocol.signatory(partner)
        if signatory is None:
            problems.append(
                f"{where} partners[{i}]: {partner!r} is not a Tier 1 signatory "
                f"(see config/protocol.yaml signatories)"
            )
        elif signatory.signed is None or signatory.signed > agreement.in_force:
            problems.append(
                f"{where} partners[{i}]: {partner!r} had not signed the overarching protocol "
                f"by in_force {agreement.in_force}"
            )
        if (signatory is not None and signatory.signing_fingerprint is None
                and all(flow.from_ != partner for flow in agreement.flows)):  # a sender is named below, once
            # Every partner signs the agreement file (Tier 2 sign-off), so each needs a pinned signing key.
            problems.append(
                f"{protocol_path(path)}: signatories: {partner!r} is a partner of {agreement.id} and signs it, but "
                "has no signing_fingerprint (pin the fingerprint of its OpenPGP signing key, as `gpg --fingerprint` "
                f"prints it; its public key goes in keys/{partner}.asc)"
            )
    for i, purpose in enumerate(agreement.purposes):
        if protocol.purpose(purpose) is None:
            problems.append(f"{where} purposes[{i}]: {purpose!r} is not a purpose in the Tier 1 register")
    for i, basis_id in enumerate(agreement.legal_basis):
        if protocol.legal_basis(basis_id) is None:
            problems.append(
                f"{where} legal_basis[{i}]: {basis_id!r} is not a legal basis in the Tier 1 register (Appendix A)"
            )
    for i, owner in enumerate(agreement.owners):
        if owner.partner not in partners:
            problems.append(f"{where} owners[{i}].partner: {owner.partner!r} is not a partner of this agreement")
    for i, contact in enumerate(agreement.contacts):
        if contact.partner not in partners:
            problems.append(f"{where} contacts[{i}].partner: {contact.partner!r} is not a partner of this agreement "
                            f"(partners: {listed})")
    if agreement.retention.controller not in partners:
        problems.append(
            f"{where} retention.controller: {agreement.retention.controller!r} is not a partner of this agreement"
        )
    for fi, flow in enumerate(agreement.flows):
        if flow.from_ not in partners:
            problems.append(
                f"{where} flows[{fi}].from: {flow.from_!r} is not a partner of this agreement (partners: {listed})"
            )
        elif (sender := protocol.signatory(flow.from_)) is not None and sender.signing_fingerprint is None:
            # Every delivery is signed by its sender: a sender without a pinned signing key cannot send.
            problems.append(
                f"{protocol_path(path)}: signatories: {flow.from_!r} sends flow {flow.id} of {agreement.id} but has "
                "no signing_fingerprint (pin the fingerprint of its OpenPGP signing key, as `gpg --fingerprint` "
                f"prints it; its public key goes in keys/{flow.from_}.asc)"
            )
        for ri, recipient in enumerate(flow.to):
            if recipient.partner not in partners:
                problems.append(
                    f"{where} flows[{fi}].to[{ri}].partner: {recipient.partner!r} is not a partner "
                    f"of this agreement (partners: {listed})"
                )
            elif recipient.partner == flow.from_:
                problems.append(f"{where} flows[{fi}].to[{ri}].partner: a flow cannot send to its own sender")
        basis = flow.consent
        if basis.legal_basis and protocol.legal_basis(basis.legal_basis) is None:
            problems.append(f"{where} flows[{fi}].consent.legal_basis: {basis.legal_basis!r} is not a legal basis "
                            "in the Tier 1 register (Appendix A)")
        grounds = [g.id for g in protocol.exceptional_grounds]
        if basis.ground and basis.ground not in grounds:
            problems.append(f"{where} flows[{fi}].consent.ground: {basis.ground!r} is not an exceptional ground "
                            f"of the protocol (grounds: {', '.join(grounds)})")
        if "consent" not in flow.model_fields_set:
            problems.append(f"{where} flows[{fi}].consent: every flow declares why it may share: "
                            "'basis: consent' with a consent_register, or 'basis: statutory' with "
                            "legal_basis, ground and justification (protocol 3.1 and 5)")
        elif basis.basis == "consent" and "basis" in basis.model_fields_set and basis.consent_register is None:
            # A file that says "consent" but names no register of withdrawals would send
            # everyone, those who withdrew included: the opposite of what it declares.
            problems.append(f"{where} flows[{fi}].consent: basis: consent needs consent_register, where "
                            "withdrawals and restrictions are recorded (protocol 3.1)")
        if (basis.consent_register or basis.opt_outs) and agreement.pseudonymisation is None:
            problems.append(f"{where} flows[{fi}].consent: a consent register or opt-out list needs the agreement's "
                            "'pseudonymisation: {key_secret: ...}': exclusions and notices are recorded by pseudonym")
        uses_pseudonyms = any(spec.share == "pseudonymise" for spec in flow.fields.values())
        if uses_pseudonyms and agreement.pseudonymisation is None:
            problems.append(
                f"{where} flows[{fi}].fields: pseudonymise is used but the agreement has no "
                "'pseudonymisation: {key_secret: ...}' naming the secret that holds the key"
            )
    if today is not None:
        if today > agreement.review_by:
            problems.append(
                f"{where} review_by: {agreement.review_by} has passed: the agreement has lapsed "
                "and its flows will not run until it is reviewed and renewed"
            )
        if today < agreement.in_force:
            problems.append(f"{where} in_force: {agreement.in_force} is in the future: flows will not run before then")
    return problems


def load_config(root: Path, *, today: date | None = None) -> Config:
    """Load ``protocol.yaml`` and every ``agreements/*.yaml`` under ``root``.

    Args:
        root: the config directory.
        today: when given, lapsed or not-yet-live agreements are reported as
            problems too (``transfers validate``). The DAG loader leaves it out so
            a lapsed agreement still shows its DAGs, which then refuse to run.

    Raises:
        ConfigError: with every problem found in every file.
    """
    root = Path(root)
    protocol = load_protocol(root / "protocol.yaml")
    problems: list[str] = []
    loaded: list[LoadedAgreement] = []
    agreement_dir = root / "agreements"
    if not agreement_dir.is_dir():
        raise ConfigError(f"{agreement_dir}: no agreements directory")
    for path in sorted(agreement_dir.glob("*.yaml")) + sorted(agreement_dir.glob("*.yml")):
        try:
            data = _read_yaml(path)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        try:
            agreement = Agreement.model_validate(data)
        except ValidationError as exc:
            problems.extend(_pydantic_problems(path, exc, data))
            continue
        if path.stem != agreement.id:
            problems.append(f"{path}: id: {agreement.id!r} must match the file name ({path.stem!r})")
        problems.extend(_cross_check(agreement, protocol, path, today))
        if agreement.flows:
            for fi, flow in enumerate(agreement.flows):
                if flow.source.kind == "sql" and flow.source.query and not (root / flow.source.query).is_file():
                    problems.append(f"{path}: flows[{fi}].source.query: {flow.source.query!r} not found under {root}")
        loaded.append(LoadedAgreement(agreement, path))
    if problems:
        raise ConfigError(problems)
    return Config(root=root, protocol=protocol, agreements=tuple(loaded))


def check_live(agreement: Agreement, protocol: Protocol, on: date) -> None:
    """Refuse a transfer on ``on`` unless the agreement is in force and not lapsed.

    Raises:
        AgreementNotLive: naming the agreement, the date and what to do.
    """
    if on < agreement.in_force:
        raise AgreementNotLive(
            f"agreement {agreement.id}: not in force until {agreement.in_force} (today is {on}); nothing was sent"
        )
    if on > agreement.review_by:
        raise AgreementNotLive(
            f"agreement {agreement.id}: lapsed on {agreement.review_by} (review_by) and has not been "
            f"renewed; nothing was sent. Review the agreement and update review_by."
        )
    for partner in agreement.partners:
        signatory = protocol.signatory(partner)
        if signatory is None or signatory.signed is None:
            raise AgreementNotLive(f"agreement {agreement.id}: {partner!r} is not a Tier 1 signatory; nothing was sent")


def retention_periods(flow: Flow) -> dict[str, Duration]:
    """Each place's period; ``archive`` only when the flow names an archive."""
    r = flow.retention
    periods = {"staging": r.staging, "remote": r.remote.period,
               "reports": r.reports, "notices": r.notices, "logs": r.logs}
    if r.archive is not None:
        periods["archive"] = r.archive.period
    return periods
