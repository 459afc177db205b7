from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from transfers.crypto import RecipientKey
from transfers.steps.encrypt import key_expiry_warning

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _key(expires_at: datetime | None) -> RecipientKey:
    return RecipientKey(
        path=Path("keys/cs.asc"),
        fingerprint="A" * 40,
        encryption_fingerprint="B" * 40,
        algorithm="Curve25519",
        expires_at=expires_at,
        key=None,
        encryption_key=None,
    )


@pytest.mark.parametrize("expires_at", [None, NOW + timedelta(days=31)])
def test_a_key_that_does_not_end_within_30_days_is_no_warning(expires_at):
    assert key_expiry_warning(_key(expires_at), "rotherham-childrens-services", NOW) == ""


def test_a_key_that_ends_within_30_days_says_when_and_what_to_do():
    note = key_expiry_warning(_key(NOW + timedelta(days=20)), "rotherham-childrens-services", NOW)

    assert note.startswith("the key expires on 2026-12-16 (in 20 days) and is refused from 7 days before")
    assert "ask rotherham-childrens-services to extend it or send a new key" in note
