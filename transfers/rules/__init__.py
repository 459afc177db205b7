"""Identifier rules shared by quality, privacy and the demo data: one copy of each.

* :mod:`transfers.rules.nhs`: the NHS number Modulus 11 check digit.
* :mod:`transfers.rules.postcode`: the UK postcode shape, its district and sector.

A leaf: imports only the standard library at import time (numpy, pandas and pyarrow
are imported inside the vectorised functions), so anything may import it.
"""

from __future__ import annotations

from transfers.rules.nhs import nhs_check_digit, nhs_number_valid, nhs_numbers_mask, nhs_numbers_valid
from transfers.rules.postcode import (
    POSTCODE_PATTERN,
    is_district,
    is_postcode,
    postcode_district,
    postcode_districts,
    postcode_parts,
)

__all__ = [
    "POSTCODE_PATTERN",
    "is_district",
    "is_postcode",
    "nhs_check_digit",
    "nhs_number_valid",
    "nhs_numbers_mask",
    "nhs_numbers_valid",
    "postcode_district",
    "postcode_districts",
    "postcode_parts",
]
