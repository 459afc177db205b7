"""The Tier 1 register: signatories, purposes, legal bases, grounds, characteristics."""

from __future__ import annotations

from datetime import date

from pydantic import field_validator

from transfers.agreement.common import DIMENSIONS, _check_slug, _Strict, pinned_fingerprint


class Signatory(_Strict):
    id: str
    name: str
    signed: date | None = None
    # The partner's OpenPGP signing key, pinned like a recipient's encryption key; its public key is in
    # keys/<id>.asc. Every flow's sender needs one (checked by load_config): deliveries are signed.
    signing_fingerprint: str | None = None

    # A partner id names folders under TRANSFERS_HOME (outbox, notices, archive): a slug cannot escape them.
    _id = field_validator("id")(classmethod(lambda cls, v: _check_slug(v, "signatory id")))
    _signing = field_validator("signing_fingerprint")(
        classmethod(lambda cls, v: None if v is None else pinned_fingerprint(v)))

    @property
    def key_file(self) -> str:
        """The partner's public key file under keys/ (its encryption and signing keys)."""
        return f"{self.id}.asc"


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
