"""Tier 1 register and Tier 2 agreements: load, check, and decide if a flow may run.

An agreement is written once as YAML under ``config/agreements/`` in the shape of
Appendix C of the protocol. It is the single source for the document IG signs
and for the DAGs that run. Loading reports every problem at once, each naming
the file and the key path, e.g.::

    config/agreements/mash-referrals.yaml: flows[0].to[0].partner: 'syp' is not a
    partner of this agreement (partners: rotherham-childrens-services, ...)
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from transfers.durations import Duration, parse_duration
from transfers.errors import AgreementNotLive, ConfigError

DIMENSIONS = ("accuracy", "validity", "reliability", "timeliness", "relevance", "completeness")
Dimension = Literal["accuracy", "validity", "reliability", "timeliness", "relevance", "completeness"]
Policy = Literal["block", "quarantine", "warn"]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_FLOW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
_CONN_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _connection_id(value: str) -> str:
    if not _CONN_ID.match(value):
        raise ValueError(f"{value!r} is not a valid connection id (lower-case, digits, '_')")
    return value


#: An Airflow connection id as the agreement names it (never credentials).
ConnectionId = Annotated[str, AfterValidator(_connection_id)]
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_HEX40 = re.compile(r"^[0-9A-F]{40}$")


class _Strict(BaseModel):
    # A typo in an agreement must be an error, not a silently ignored key.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (lower-case letters, digits, '-')")
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def check_relative_path(value: str, what: str = "path") -> str:
    """Refuse paths that could escape the directory they are joined to."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must not be empty")
    if any(ch in value for ch in ("\x00", "\n", "\r")):
        raise ValueError(f"{what} {value!r} contains a control character")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{what} {value!r} must be relative, not absolute")
    if any(part == ".." for part in re.split(r"[/\\]", value)):
        raise ValueError(f"{what} {value!r} must not contain '..'")
    return value


# --------------------------------------------------------------------------- Tier 1


class Signatory(_Strict):
    id: str
    name: str
    signed: date | None = None


class Named(_Strict):
    id: str
    name: str
    section: str | None = None
    meaning: str | None = None


class ProtocolInfo(_Strict):
    name: str
    version: str
    owner: str
    agreed_by: str | None = None
    review: str | None = None


class Protocol(_Strict):
    """The Tier 1 register (``config/protocol.yaml``)."""

    protocol: ProtocolInfo
    signatories: list[Signatory]
    purposes: list[Named]
    legal_bases: list[Named]
    exceptional_grounds: list[Named]
    quality_characteristics: list[Named]

    # A field validator, so the error is reported at "quality_characteristics", not "(top level)".
    @field_validator("quality_characteristics")
    @classmethod
    def _six_characteristics(cls, value: list[Named]) -> list[Named]:
        ids = [c.id for c in value]
        if sorted(ids) != sorted(DIMENSIONS):
            raise ValueError(f"must be exactly {', '.join(DIMENSIONS)} (found: {', '.join(ids) or 'none'})")
        return value

    def signatory(self, partner_id: str) -> Signatory | None:
        return next((s for s in self.signatories if s.id == partner_id), None)

    def name_of(self, partner_id: str) -> str:
        found = self.signatory(partner_id)
        return found.name if found else partner_id

    def purpose(self, purpose_id: str) -> Named | None:
        return next((p for p in self.purposes if p.id == purpose_id), None)

    def legal_basis(self, basis_id: str) -> Named | None:
        return next((b for b in self.legal_bases if b.id == basis_id), None)


# --------------------------------------------------------------------------- Tier 2


class FieldChecks(_Strict):
    """Checks on one field; each switches on an expectation of one characteristic."""

    required: bool | float = False  # completeness; a float is the share that must be present
    unique: bool = False  # reliability
    nhs_number: bool = False  # accuracy: Modulus 11 check digit
    not_future: bool = False  # accuracy: a date not after the logical date
    not_before: date | None = None  # accuracy: a date floor
    format: Literal["postcode", "date", "datetime", "email", "integer", "number"] | None = None
    pattern: str | None = None  # validity: a regular expression the value must match
    in_: list[str | int] | None = Field(default=None, alias="in")  # validity: allowed values
    min: float | None = None  # validity
    max: float | None = None
    max_length: int | None = None
    recent: str | None = None  # timeliness: within this period before the logical date
    after: str | None = None  # accuracy: cross-field order, this date is not before that field's date
    districts: list[str] | None = None  # accuracy: the postcode's district is in this reference list
    mostly: float = Field(default=1.0, gt=0, le=1)  # share of records that must pass this field's other checks

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [d for d in value if not re.fullmatch(r"[A-Za-z]{1,2}[0-9][A-Za-z0-9]?", str(d))]
        if bad or not value:
            raise ValueError(f"districts must be postcode districts such as S60 (not: {', '.join(map(repr, bad))})")
        return [d.upper() for d in value]

    @field_validator("required")
    @classmethod
    def _share(cls, value: bool | float) -> bool | float:
        if not isinstance(value, bool) and not 0 < value <= 1:
            raise ValueError("required as a number is the share that must be present, in (0, 1]")
        return value

    @field_validator("recent")
    @classmethod
    def _recent(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
        return value


class FieldSpec(_Strict):
    """How one source field is shared; a field not listed is never shared."""

    share: Literal["keep", "pseudonymise", "generalise", "mask", "drop"]
    to: Literal["year", "month", "age_band", "district", "sector"] | None = None
    # age_band: lower bounds of the bands in whole years at the logical date (last band open-ended).
    bands: list[int] | None = None
    keep_last: int = Field(default=0, ge=0, le=4)  # mask: characters left visible at the end
    checks: FieldChecks = FieldChecks()

    @model_validator(mode="after")
    def _generalise_needs_level(self) -> FieldSpec:
        if self.share == "generalise" and self.to is None:
            raise ValueError("share: generalise needs 'to' (year, month, age_band, district or sector)")
        if self.share != "generalise" and self.to is not None:
            raise ValueError(f"'to' only applies to share: generalise (this field is share: {self.share})")
        if self.bands is not None:
            if self.to != "age_band":
                raise ValueError("'bands' only applies to share: generalise, to: age_band")
            if not self.bands or self.bands != sorted(set(self.bands)) or self.bands[0] < 0:
                raise ValueError("bands must be distinct, increasing, non-negative ages, e.g. [0, 5, 10, 16, 18]")
        if self.keep_last and self.share != "mask":
            raise ValueError(f"'keep_last' only applies to share: mask (this field is share: {self.share})")
        return self


class Source(_Strict):
    """Where the sender's extract comes from."""

    kind: Literal["sql", "csv"]
    connection: ConnectionId
    query: str | None = None  # sql: a file under config/ holding the query
    path: str | None = None  # csv: a path under the connection's base directory; {ds} = logical date
    batch_rows: int = Field(default=50_000, ge=1, le=5_000_000)

    @model_validator(mode="after")
    def _kind_fields(self) -> Source:
        if self.kind == "sql" and not self.query:
            raise ValueError("a sql source needs 'query' (a .sql file under config/)")
        if self.kind == "csv" and not self.path:
            raise ValueError("a csv source needs 'path' (relative to the connection's directory)")
        for value in (self.query, self.path):
            if value:
                check_relative_path(value, "source path")
        return self


class Recipient(_Strict):
    """One recipient of a flow and how its copy reaches it."""

    partner: str
    sftp: ConnectionId  # connection id resolved at run time (Airflow Connection / env)
    path: str  # remote directory, relative to the SFTP login directory
    pgp_fingerprint: str
    pgp_key: str | None = None  # file under keys/; default <partner>.asc

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_relative_path(value, "remote path")

    @field_validator("pgp_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        normal = value.replace(" ", "").upper()
        if not _HEX40.match(normal):
            raise ValueError(
                f"{value!r} is not an OpenPGP v4 fingerprint (40 hex digits; "
                "ask the recipient for the output of `gpg --fingerprint`)"
            )
        return normal

    @field_validator("pgp_key")
    @classmethod
    def _key(cls, value: str | None) -> str | None:
        return None if value is None else check_relative_path(value, "pgp_key")

    @property
    def key_file(self) -> str:
        return self.pgp_key or f"{self.partner}.asc"


class QualityPolicy(_Strict):
    """What a failure of each characteristic does. Unset characteristics block."""

    on_failure: dict[Dimension, Policy] = {}
    max_age: str | None = None  # timeliness: newest record no older than this before the logical date
    # reliability: drift against the flow's recent runs (from the ledger's quality entries)
    row_count_drift: float | None = Field(default=None, gt=0)  # rows within this share of the recent median
    null_rate_drift: float | None = Field(default=None, gt=0, le=1)  # a field's null share rises by at most this
    history_runs: int = Field(default=10, ge=1, le=100)  # how many earlier runs make the baseline
    min_history: int = Field(default=3, ge=1)  # fewer earlier runs than this: "no history yet"

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value)

    def policy(self, dimension: str) -> Policy:
        return self.on_failure.get(dimension, "block")  # type: ignore[arg-type]


class RemoteRetention(_Strict):
    """The copy left on the recipient's SFTP server until it collects it."""

    period: str
    # Deleting on a partner's server needs its agreement; without it the copy is theirs to remove.
    sender_may_remove: bool = False

    _dur = field_validator("period")(classmethod(lambda cls, v: _check_duration(v)))


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ArchiveRetention(_Strict):
    """Encrypted deliveries archived after delivery: a local directory or an S3 bucket/prefix."""

    period: str
    dir: str | None = None  # local: relative to TRANSFERS_HOME, or absolute
    bucket: str | None = None  # S3 (versioned or not: every version is deleted)
    prefix: str = ""
    connection: str | None = None  # S3: connection id (aws type; extra.endpoint_url, region_name)

    _dur = field_validator("period")(classmethod(lambda cls, v: _check_duration(v)))

    @model_validator(mode="after")
    def _one_store(self) -> ArchiveRetention:
        if (self.dir is None) == (self.bucket is None):
            raise ValueError("an archive is either 'dir' (a local directory) or 'bucket' (S3), exactly one")
        if self.bucket is not None:
            if not _BUCKET.match(self.bucket):
                raise ValueError(f"bucket {self.bucket!r} is not a valid S3 bucket name")
            if not self.connection or not _CONN_ID.match(self.connection):
                raise ValueError("an S3 archive needs 'connection' (a connection id holding endpoint and credentials)")
            if self.prefix:
                check_relative_path(self.prefix, "archive prefix")
        elif self.dir is not None and (not self.dir.strip() or any(c in self.dir for c in "\x00\n\r")):
            raise ValueError(f"archive dir {self.dir!r} must be a plain directory path")
        return self


class FlowRetention(_Strict):
    """How long each copy made by a flow is kept, place by place (ISO 8601 periods)."""

    staging: str  # the run's working files and the encrypted outbox, reused on a retry
    remote: RemoteRetention  # a bare period is accepted: the sender may then not remove it
    archive: ArchiveRetention | None = None  # no archive unless one is named
    reports: str = "P90D"  # quality reports: they name records, so they expire too
    notices: str = "P90D"  # copies of withdrawal and correction notices sent to partners
    logs: str = "P30D"  # run logs kept under TRANSFERS_HOME/logs

    _dur = field_validator("staging", "reports", "notices", "logs")(classmethod(lambda cls, v: _check_duration(v)))

    @field_validator("remote", mode="before")
    @classmethod
    def _remote_period(cls, value: Any) -> Any:
        # Checked here so a bad bare period is reported at "remote", where it was written.
        return {"period": _check_duration(value)} if isinstance(value, str) else value


class SubjectSource(_Strict):
    """A consent register or opt-out list: a CSV file or SQL table, one row per subject (and change)."""

    kind: Literal["csv", "sql"]
    connection: ConnectionId
    path: str | None = None  # csv: relative to the connection's directory
    table: str | None = None  # sql: a table (or view) name, optionally schema-qualified
    subject: str = "subject"  # column holding the identifier (normalised before matching)
    status: str | None = "status"  # register: withdrawn | restricted | given; None for an opt-out list
    effective: str | None = "effective"  # column with the date the row takes effect (ISO); None = always

    @model_validator(mode="after")
    def _where(self) -> SubjectSource:
        if self.kind == "csv" and not self.path:
            raise ValueError("a csv subject list needs 'path'")
        if self.kind == "sql" and not (self.table and re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$", self.table)):
            raise ValueError("a sql subject list needs 'table' (a plain, optionally schema-qualified, name)")
        if self.path:
            check_relative_path(self.path, "subject list path")
        return self


class SharingBasis(_Strict):
    """Why a flow may share: the subject's consent, or a statutory basis and exceptional ground (3.1, 5)."""

    basis: Literal["consent", "statutory"] = "consent"
    legal_basis: str | None = None  # statutory: an id from the Tier 1 legal bases
    ground: str | None = None  # statutory: an id from the protocol's exceptional grounds
    justification: str | None = None  # statutory: why sharing without consent is justified
    override_opt_outs: bool = False  # statutory: send withdrawn / opted-out subjects too (explicit)
    consent_register: SubjectSource | None = None  # withdrawn / restricted subjects
    opt_outs: SubjectSource | None = None  # national data opt-out list

    @model_validator(mode="after")
    def _statutory(self) -> SharingBasis:
        if self.basis == "statutory":
            missing = [k for k in ("legal_basis", "ground", "justification") if not getattr(self, k)]
            if missing:
                raise ValueError(f"basis: statutory needs {', '.join(missing)} (protocol 3.1 and 5)")
            if len((self.justification or "").split()) < 5:
                raise ValueError("justification must say, in words, why sharing without consent is justified")
        elif self.override_opt_outs:
            raise ValueError("override_opt_outs only applies to basis: statutory")
        return self


class Deceased(_Strict):
    """Records of people who have died: excluded (the default) or sent under caution (protocol 5)."""

    handling: Literal["exclude", "send_with_caution"] = "exclude"
    date_of_death: str  # the flow field holding the date of death (usually share: drop)


class DisclosureRisk(_Strict):
    """k-anonymity over the quasi-identifiers of what is about to be sent."""

    quasi_identifiers: list[str] = Field(min_length=1)
    min_k: int = Field(default=1, ge=1)
    on_failure: Literal["warn", "block"] = "warn"


class Flow(_Strict):
    """One Tier 2 data flow (Data Flow A, B, ...)."""

    id: str
    name: str
    from_: str = Field(alias="from")
    to: list[Recipient] = Field(min_length=1)
    schedule: str = "0 2 * * *"
    source: Source
    subject: str
    record_key: list[str] | str | None = None
    fields: dict[str, FieldSpec] = Field(min_length=1)
    quality: QualityPolicy = QualityPolicy()
    retention: FlowRetention
    consent: SharingBasis = SharingBasis()
    deceased: Deceased | None = None
    disclosure_risk: DisclosureRisk | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _FLOW_ID.match(value):
            raise ValueError(f"{value!r} is not a valid flow id (letters, digits, '_' or '-')")
        return value

    @model_validator(mode="after")
    def _fields_known(self) -> Flow:
        bad = [name for name in self.fields if not _FIELD.match(name)]
        if bad:
            raise ValueError(f"field names must be identifiers: {', '.join(map(repr, bad))}")
        if self.subject not in self.fields:
            raise ValueError(f"subject {self.subject!r} is not one of the flow's fields")
        for key in self.key_fields:
            if key not in self.fields:
                raise ValueError(f"record_key {key!r} is not one of the flow's fields")
        for name, spec in self.fields.items():
            if spec.checks.after is not None and spec.checks.after not in self.fields:
                raise ValueError(f"fields.{name}.checks.after: {spec.checks.after!r} is not one of the flow's fields")
        if not self.shared_fields:
            raise ValueError("the flow shares no field (every field is share: drop)")
        if self.deceased is not None and self.deceased.date_of_death not in self.fields:
            raise ValueError(f"deceased.date_of_death {self.deceased.date_of_death!r} is not one of the flow's fields")
        if self.disclosure_risk is not None:
            bad = [q for q in self.disclosure_risk.quasi_identifiers if q not in self.shared_fields]
            if bad:
                raise ValueError(f"disclosure_risk.quasi_identifiers {', '.join(map(repr, bad))} are not shared fields")
        return self

    @property
    def key_fields(self) -> list[str]:
        if self.record_key is None:
            return [self.subject]
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    @property
    def shared_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.share != "drop"]


class Owner(_Strict):
    partner: str
    role: str


class Revision(_Strict):
    date: date
    details: str


class ControllerRetention(_Strict):
    """The data controller's retention period for what the recipient receives."""

    controller: str
    period: str
    procedure: str = "Secure deletion under the data controller's security and archiving procedures."

    _dur = field_validator("period")(classmethod(lambda cls, v: _check_duration(v)))


class Pseudonymisation(_Strict):
    key_secret: str  # name of the secret holding the HMAC key (Airflow Variable / env)
    key_id: str = "k1"  # recorded with each disclosure so a rotation is visible
    # Agreements naming the same linkage domain (and secret) give one person one pseudonym;
    # without it every agreement has its own key, so recipients cannot link across agreements.
    linkage_domain: str | None = None


class Agreement(_Strict):
    """A Tier 2 data sharing agreement (Appendix C of the protocol)."""

    id: str
    name: str
    version: str = "1.0"
    purpose: str
    purposes: list[str] = Field(min_length=1)
    legal_basis: list[str] = Field(min_length=1)
    partners: list[str] = Field(min_length=2)
    owners: list[Owner] = Field(min_length=1)
    drawn_up_by: str
    in_force: date
    review_by: date
    retention: ControllerRetention
    security: str = (
        "Data is minimised and pseudonymised before it leaves the sender, encrypted with OpenPGP "
        "to the recipient's pinned key and delivered over SFTP to the recipient's pinned host."
    )
    pseudonymisation: Pseudonymisation | None = None
    revisions: list[Revision] = []
    flows: list[Flow] = Field(min_length=1)

    _id = field_validator("id")(classmethod(lambda cls, v: _check_slug(v, "agreement id")))

    # Field validators rather than one model validator, so the error is reported
    # at its key ("review_by", "flows") instead of "(top level)".
    @field_validator("review_by")
    @classmethod
    def _review_after_in_force(cls, value: date, info: ValidationInfo) -> date:
        in_force = info.data.get("in_force")
        if in_force is not None and value <= in_force:
            raise ValueError(f"{value} must be after in_force {in_force}")
        return value

    @field_validator("flows")
    @classmethod
    def _unique_flow_ids(cls, flows: list[Flow]) -> list[Flow]:
        ids = [f.id for f in flows]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            where = ", ".join(f"flows[{n}].id" for n, i in enumerate(ids) if i in dupes)
            raise ValueError(f"flow ids must be unique: {', '.join(map(repr, dupes))} repeated at {where}")
        return flows

    def flow(self, flow_id: str) -> Flow:
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise ConfigError(
            f"agreement {self.id}: no flow {flow_id!r} (flows: {', '.join(f.id for f in self.flows)})"
        )


# --------------------------------------------------------------------------- loading


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
    for i, purpose in enumerate(agreement.purposes):
        if protocol.purpose(purpose) is None:
            problems.append(f"{where} purposes[{i}]: {purpose!r} is not a purpose in the Tier 1 register")
    for i, basis in enumerate(agreement.legal_basis):
        if protocol.legal_basis(basis) is None:
            problems.append(
                f"{where} legal_basis[{i}]: {basis!r} is not a legal basis in the Tier 1 register (Appendix A)"
            )
    for i, owner in enumerate(agreement.owners):
        if owner.partner not in partners:
            problems.append(f"{where} owners[{i}].partner: {owner.partner!r} is not a partner of this agreement")
    if agreement.retention.controller not in partners:
        problems.append(
            f"{where} retention.controller: {agreement.retention.controller!r} is not a partner of this agreement"
        )
    for fi, flow in enumerate(agreement.flows):
        if flow.from_ not in partners:
            problems.append(
                f"{where} flows[{fi}].from: {flow.from_!r} is not a partner of this agreement (partners: {listed})"
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
    periods = {"staging": parse_duration(r.staging), "remote": parse_duration(r.remote.period),
               "reports": parse_duration(r.reports), "notices": parse_duration(r.notices),
               "logs": parse_duration(r.logs)}
    if r.archive is not None:
        periods["archive"] = parse_duration(r.archive.period)
    return periods
