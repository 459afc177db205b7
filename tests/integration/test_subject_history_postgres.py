"""The subject index on PostgreSQL (a deployment's ledger database): record once, copy once, find by lookup."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from transfers.privacy.subjects import SubjectIndex, lookup_key, lookup_of

pytestmark = pytest.mark.integration


def test_subject_index_on_postgresql_records_and_copies_once(pg_source):
    url, _name = pg_source
    index = SubjectIndex(url)  # refs are unique per test, so a table left by another test does not matter
    key = lookup_key("a-long-enough-test-secret-0123456789", "mash-referrals")
    ref = f"prepared:{uuid.uuid4().hex}"
    rows = [{"event": "prepared", "agreement": "mash-referrals", "flow": "mash-referrals.A",
             "logical_date": date(2026, 11, 24), "recipient": None, "lookup": lookup_of(n, key),
             "pseudonym": f"p{i}", "key_id": "k1", "detail": None, "ref": ref}
            for i, n in enumerate(["9434765919", "9991234567"])]
    index.record(rows)
    index.record(rows[:1])  # a retry: nothing new
    disclosure = f"disclosure:{uuid.uuid4().hex}"
    index.copy_prepared(ref, disclosure_ref=disclosure, recipient="south-yorkshire-police")
    index.copy_prepared(ref, disclosure_ref=disclosure, recipient="south-yorkshire-police")

    assert index.digest("disclosed", disclosure)["subjects"] == 2
    found = index.events([lookup_of("943 476 5919", key)])
    assert [(e.event, e.recipient, e.pseudonym) for e in found if e.ref == disclosure] == [
        ("disclosed", "south-yorkshire-police", "p0")]
    index.close()


def test_the_withdrawals_register_on_postgresql_records_once_per_agreement(pg_source):
    url, _name = pg_source
    index = SubjectIndex(url)
    agreement = f"agreement-{uuid.uuid4().hex[:8]}"  # its own register, whatever other tests left
    lookup = lookup_of("9434765919", lookup_key("a-long-enough-test-secret-0123456789", agreement))

    assert index.record_withdrawal(agreement, lookup) is True
    assert index.record_withdrawal(agreement, lookup) is False
    assert index.withdrawn(agreement) == {lookup}
    assert [e.event for e in index.events([lookup])] == ["withdrawn"]
    index.close()
