"""A Tier 2 data sharing agreement (Appendix C): partners, owners, dates, revisions, flows."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from transfers.agreement.common import ConnectionId, _check_slug, _Strict
from transfers.agreement.flow import Flow
from transfers.durations import IsoDuration
from transfers.errors import ConfigError


class Owner(_Strict):
    partner: str
    role: str


#: Who is told what (``transfers.alerts``): a failed night goes to the sending partner's engineers, a
#: quality block to the data owner, an agreement due for review to IG.
ContactRole = Literal["data-owner", "ig", "engineer"]
# One address, no display name and no list: a contact is a mailbox the alert is sent to as written.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")


class Contact(_Strict):
    """A person or team at a partner who is told about this agreement's flows (issue 13, alerts)."""

    partner: str
    role: ContactRole
    email: str
    # The Airflow SMTP connection this contact's mail goes through; default the deployment's
    # TRANSFERS_ALERTS_CONN_ID (smtp_default).
    notifier: ConnectionId | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if len(value) > 254 or not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an email address (one address, e.g. mash-team@example.org)")
        return value


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
    contacts: list[Contact] = []
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

    def contacts_of(self, role: ContactRole, partner: str | None = None) -> list[Contact]:
        """The contacts with ``role`` (at ``partner`` if given), in the order the agreement lists them."""
        return [c for c in self.contacts if c.role == role and (partner is None or c.partner == partner)]

    def flow(self, flow_id: str) -> Flow:
        for flow in self.flows:
            if flow.id == flow_id:
                return flow
        raise ConfigError(
            f"agreement {self.id}: no flow {flow_id!r} (flows: {', '.join(f.id for f in self.flows)})"
        )
