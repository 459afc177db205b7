"""Privacy by design: field transforms, disclosure risk, consent and opt-out exclusions.

* :mod:`transfers.privacy.transforms`: allow-list, keyed pseudonyms, generalisation, masking.
* :mod:`transfers.privacy.risk`: k-anonymity over declared quasi-identifiers.
* :mod:`transfers.privacy.subjects`: which subjects (by pseudonym) each disclosure, exclusion and
  notice concerned, kept beside the ledger so its payloads stay small.
"""

from transfers.privacy.transforms import (
    DEFAULT_AGE_BANDS,
    MIN_KEY_BYTES,
    PrivacyStats,
    age_band,
    apply_privacy,
    derive_key,
    generalise_date,
    generalise_postcode,
    key_fingerprint,
    mask,
    normalise_identifier,
    pseudonymise,
)

__all__ = [
    "DEFAULT_AGE_BANDS",
    "MIN_KEY_BYTES",
    "PrivacyStats",
    "age_band",
    "apply_privacy",
    "derive_key",
    "generalise_date",
    "generalise_postcode",
    "key_fingerprint",
    "mask",
    "normalise_identifier",
    "pseudonymise",
]
