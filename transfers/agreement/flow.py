"""A Tier 2 data flow: source, fields and how each is shared, checks, policy, basis.

How long each copy a flow makes is kept (``retention:``) is in :mod:`transfers.agreement.retention`.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator, model_validator

from transfers.agreement.common import (
    _FIELD,
    _FLOW_ID,
    ConnectionId,
    Dimension,
    Policy,
    _Strict,
    check_relative_path,
    pinned_fingerprint,
)
from transfers.agreement.mesh import MeshRoute
from transfers.agreement.retention import FlowRetention
from transfers.agreement.source import Source
from transfers.durations import IsoDuration, parse_duration
from transfers.errors import ConfigError
from transfers.logical_date import DEFAULT_TIMEZONE, check_timezone
from transfers.rules import is_district


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
    recent: IsoDuration | None = None  # timeliness: within this period before the logical date
    after: str | None = None  # accuracy: cross-field order, this date is not before that field's date
    districts: list[str] | None = None  # accuracy: the postcode's district is in this reference list
    mostly: float = Field(default=1.0, gt=0, le=1)  # share of records that must pass this field's other checks

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        bad = [d for d in value if not is_district(str(d))]
        if bad or not value:
            raise ValueError(f"districts must be postcode districts such as S60 (not: {', '.join(map(repr, bad))})")
        return [d.upper() for d in value]

    @field_validator("required")
    @classmethod
    def _share(cls, value: bool | float) -> bool | float:
        if not isinstance(value, bool) and not 0 < value <= 1:
            raise ValueError("required as a number is the share that must be present, in (0, 1]")
        return value

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


#: How a file is put on the recipient's server (``transfers.delivery.upload``): ``atomic`` (default) and
#: ``rename`` upload under a hidden temporary name and rename it into place with the SFTP rename that
#: never replaces a taken name; ``direct`` writes the final name (for inboxes that take a file away on close).
UploadMode = Literal["atomic", "rename", "direct"]
#: How the upload is checked before it counts as delivered: ``read-back`` (default: the bytes read back
#: and hashed), ``size`` (the size the server reports, no read access needed), ``receipt`` (no check on
#: the server: the recipient's signed receipt, which lists every file's SHA-256, is the proof).
VerifyMode = Literal["read-back", "size", "receipt"]


class Recipient(_Strict):
    """One recipient of a flow and how its copy reaches it: ``sftp`` (with ``path``) or ``mesh``, never both."""

    partner: str
    sftp: ConnectionId | None = None  # connection id resolved at run time (Airflow Connection / env)
    path: str | None = None  # remote directory, relative to the SFTP login directory (sftp only)
    mesh: MeshRoute | None = None  # NHS MESH instead of SFTP
    pgp_fingerprint: str
    pgp_key: str | None = None  # file under keys/; default <partner>.asc
    sftp_timeout: float | None = Field(default=None, gt=0, le=3600)  # seconds per SFTP wait; default the setting
    upload: UploadMode = "atomic"  # how the server takes a file (see UploadMode)
    verify: VerifyMode = "read-back"  # how the upload is checked (see VerifyMode; receipt needs receipt_within set)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        return None if value is None else check_relative_path(value, "remote path")

    @model_validator(mode="after")
    def _one_transport(self) -> Recipient:
        if (self.sftp is None) == (self.mesh is None):
            raise ValueError(f"recipient {self.partner!r} needs exactly one of 'sftp' or 'mesh'")
        if self.sftp is not None and self.path is None:
            raise ValueError(f"recipient {self.partner!r}: an sftp recipient needs 'path'")
        if self.mesh is not None and self.path is not None:
            raise ValueError(f"recipient {self.partner!r}: 'path' is for sftp; a mesh recipient has none")
        return self

    @property
    def sftp_connection(self) -> str:
        """The SFTP connection id; raises ``ConfigError`` for a MESH recipient (callers that only speak SFTP)."""
        if self.sftp is None:
            raise ConfigError(f"recipient {self.partner!r} is reached by MESH, not SFTP")
        return self.sftp

    @property
    def remote_path(self) -> str:
        """The SFTP remote directory; raises ``ConfigError`` for a MESH recipient."""
        if self.path is None:
            raise ConfigError(f"recipient {self.partner!r} is reached by MESH, not SFTP")
        return self.path

    _fingerprint = field_validator("pgp_fingerprint")(classmethod(lambda cls, v: pinned_fingerprint(v)))

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
    max_age: IsoDuration | None = None  # timeliness: newest record no older than this before the logical date
    # reliability: drift against the flow's recent runs (from the ledger's quality entries)
    row_count_drift: float | None = Field(default=None, gt=0)  # rows within this share of the recent median
    null_rate_drift: float | None = Field(default=None, gt=0, le=1)  # a field's null share rises by at most this
    history_runs: int = Field(default=10, ge=1, le=100)  # how many earlier runs make the baseline
    min_history: int = Field(default=3, ge=1)  # fewer earlier runs than this: "no history yet"

    def policy(self, dimension: str) -> Policy:
        # Any characteristic the Tier 1 register names may be asked about; one not set here blocks.
        for name, policy in self.on_failure.items():
            if name == dimension:
                return policy
        return "block"


SubjectStatus = Literal["withdrawn", "restricted", "given"]


def _same_words() -> dict[SubjectStatus, list[str]]:
    return {"withdrawn": ["withdrawn"], "restricted": ["restricted"], "given": ["given"]}


class SubjectSource(_Strict):
    """A consent register or opt-out list: a CSV file or SQL table, one row per subject (and change)."""

    kind: Literal["csv", "sql"]
    connection: ConnectionId
    path: str | None = None  # csv: relative to the connection's directory
    table: str | None = None  # sql: a table (or view) name, optionally schema-qualified
    subject: str = "subject"  # column holding the identifier (normalised before matching)
    # register: the status column (its words mapped by `statuses`); None: every row is a withdrawal.
    # An opt-out list's rows are all opt-outs, so it normally has none (status: null).
    status: str | None = "status"
    effective: str | None = "effective"  # column with the date the row takes effect (ISO); None = always
    # register: the register's own words for each status (compared case-insensitively); a word
    # not listed stops the run, so a register's vocabulary is never guessed.
    statuses: dict[SubjectStatus, list[str]] = Field(default_factory=_same_words)

    @field_validator("statuses")
    @classmethod
    def _statuses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        seen: dict[str, str] = {}
        for status, words in value.items():
            for word in words:
                other = seen.setdefault(word.strip().casefold(), status)
                if other != status:
                    raise ValueError(f"the word {word!r} is listed under both {other} and {status}")
        return value

    @model_validator(mode="after")
    def _where(self) -> SubjectSource:
        if "statuses" in self.model_fields_set and self.status is None:
            raise ValueError("'statuses' maps the words of a status column; this list has none (status: null)")
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


class DeliveryCsv(_Strict):
    """How the delivered CSV is written."""

    # Cells starting =, +, -, @ (or tab, CR, LF) get a leading ' so a spreadsheet shows, not runs, them
    # (numbers such as -3 are left alone). Off for a recipient that loads the file into a database.
    formula_escape: bool = True


class Flow(_Strict):
    """One Tier 2 data flow (Data Flow A, B, ...)."""

    id: str
    name: str
    from_: str = Field(alias="from")
    to: list[Recipient] = Field(min_length=1)
    schedule: str = "0 2 * * *"
    timezone: str = DEFAULT_TIMEZONE  # the schedule's clock, and the day a run's logical date falls on
    source: Source
    subject: str
    record_key: list[str] | str | None = None
    fields: dict[str, FieldSpec] = Field(min_length=1)
    quality: QualityPolicy = QualityPolicy()
    retention: FlowRetention
    consent: SharingBasis = SharingBasis()
    deceased: Deceased | None = None
    disclosure_risk: DisclosureRisk | None = None
    csv: DeliveryCsv = DeliveryCsv()
    # How long after delivery the sender waits for the recipient's signed receipt before the night fails:
    # within a DAG run's limit (TRANSFERS_RUN_TIMEOUT_HOURS, default 20 h), so the wait fails as overdue.
    receipt_within: IsoDuration = parse_duration("PT12H")

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _FLOW_ID.match(value):
            raise ValueError(f"{value!r} is not a valid flow id (letters, digits, '_' or '-')")
        return value

    _tz = field_validator("timezone")(classmethod(lambda cls, v: check_timezone(v)))

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
        self._check_upload_modes()
        if self.disclosure_risk is not None:
            bad = [q for q in self.disclosure_risk.quasi_identifiers if q not in self.shared_fields]
            if bad:
                raise ValueError(f"disclosure_risk.quasi_identifiers {', '.join(map(repr, bad))} are not shared fields")
        return self

    def _check_upload_modes(self) -> None:
        """Refuse the upload/verify combinations that would not prove a delivery (README: upload modes)."""
        for recipient in self.to:
            where = f"flow {self.id}, recipient {recipient.partner}: upload: {recipient.upload} with verify: {recipient.verify}"
            if recipient.upload == "direct" and recipient.verify == "read-back":
                # A direct inbox may take the file away on close, so there is nothing to read back; a
                # server that keeps the file can take atomic or rename, where no partial file is ever seen.
                raise ValueError(f"{where} is refused: a direct upload is for inboxes that take the file away, "
                                 "so it cannot be read back; set verify: size or receipt, or upload: atomic or rename")
            if recipient.verify == "receipt" and "receipt_within" not in self.model_fields_set:
                # The signed receipt is then the only proof the bytes arrived intact: its deadline is
                # declared where the reviewer of the agreement sees it, never left to the default.
                raise ValueError(f"{where} needs the flow to declare receipt_within (e.g. PT12H): the recipient's "
                                 "signed receipt is then the only proof the files arrived intact")

    @property
    def key_fields(self) -> list[str]:
        if self.record_key is None:
            return [self.subject]
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    @property
    def shared_fields(self) -> list[str]:
        return [name for name, spec in self.fields.items() if spec.share != "drop"]
