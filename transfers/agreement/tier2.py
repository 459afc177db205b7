"""A Tier 2 data sharing agreement (Appendix C): partners, owners, dates, revisions, flows."""

from __future__ import annotations

from datetime import date

from pydantic import Field, ValidationInfo, field_validator

from transfers.agreement.common import _check_slug, _Strict
from transfers.agreement.flow import Flow
from transfers.durations import IsoDuration
from transfers.errors import ConfigError


class Owner(_Strict):
    partner: str
    role: str


class Revision(_Strict):
    date: date
    details: str


class ControllerRetention(_Strict):
    """The data controller's retention period for what the recipient receives."""

    controller: str
    period: IsoDuration
    procedure: str = "Secure deletion under the data controller's security and archiving procedures."


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
