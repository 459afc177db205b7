"""The flow models' own validation (``transfers/agreement/flow.py``): a field's options fit its share, and a
statutory basis names its ground and justification."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from transfers.agreement import FieldSpec, SharingBasis


def test_field_spec_rejects_misplaced_options():
    with pytest.raises(ValidationError, match="bands"):
        FieldSpec(share="generalise", to="year", bands=[0, 5])
    with pytest.raises(ValidationError, match="keep_last"):
        FieldSpec(share="keep", keep_last=2)
    with pytest.raises(ValidationError, match="increasing"):
        FieldSpec(share="generalise", to="age_band", bands=[10, 5])


def test_statutory_basis_needs_a_ground_and_a_written_justification():
    with pytest.raises(ValidationError, match="legal_basis, ground, justification"):
        SharingBasis(basis="statutory")
    with pytest.raises(ValidationError, match="in words"):
        SharingBasis(basis="statutory", legal_basis="children-act-1989", ground="safeguarding", justification="yes")
    with pytest.raises(ValidationError, match="override_opt_outs only applies"):
        SharingBasis(basis="consent", override_opt_outs=True)
