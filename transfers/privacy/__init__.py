"""Privacy by design: field transforms, disclosure risk, consent and opt-out exclusions.

* :mod:`transfers.privacy.transforms`: allow-list, generalisation, masking; applies the pseudonyms.
* :mod:`transfers.privacy.pseudonyms`: keyed pseudonyms and the per-domain keys they are made with.
* :mod:`transfers.privacy.risk`: k-anonymity over declared quasi-identifiers.
* :mod:`transfers.privacy.subjects`: which subjects (by pseudonym) each disclosure, exclusion and
  notice concerned, kept beside the ledger so its payloads stay small.
"""

from transfers.privacy.pseudonyms import MIN_KEY_BYTES, derive_key, key_fingerprint, normalise_identifier, pseudonymise
from transfers.privacy.transforms import (
    DEFAULT_AGE_BANDS,
    PrivacyStats,
    age_band,
    apply_privacy,
    generalise_date,
    generalise_postcode,
    mask,
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
