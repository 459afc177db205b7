"""The receipt document: what a recipient writes is what a sender reads back, and nothing else parses."""

from __future__ import annotations

import json

import pytest

from transfers.errors import ReceiptInvalid
from transfers.receipt import (
    RECEIPT_FORMAT,
    Receipt,
    ReceiptFile,
    base_name,
    delivery_id,
    manifest_name,
    read_document,
    receipt_name,
)


def _receipt(**changes) -> Receipt:
    fields = dict(delivery_id=delivery_id("mash-referrals", "A", "2026-11-25", "south-yorkshire-police"),
                  agreement={"id": "mash-referrals", "version": "1.1", "sha256": "ab" * 32}, flow="A",
                  logical_date="2026-11-25", sender="rotherham-childrens-services",
                  recipient="south-yorkshire-police", manifest_sha256="cd" * 32,
                  files=(ReceiptFile("mash-referrals_A_2026-11-25.csv.pgp", 1234, "ef" * 32),), rows=120,
                  status="accepted", reason="", received_at="2026-11-26T02:10:00+00:00", destroy_by="2032-11-25",
                  recipient_ledger_head={"seq": 4, "hash": "01" * 32}, signer_fingerprint="F" * 40)
    fields.update(changes)
    return Receipt(**fields)


def test_a_receipt_reads_back_exactly_as_written_with_its_format_first():
    receipt = _receipt()
    data = receipt.to_bytes()
    assert next(iter(json.loads(data))) == "format"
    assert Receipt.parse(data, where="r.json") == receipt and receipt.accepted
    assert not _receipt(status="rejected", reason="unsigned", rows=0).accepted


def test_both_ends_name_a_delivery_and_its_files_alike():
    assert delivery_id("mash-referrals", "A", "2026-11-25", "syp") == "mash-referrals:A:2026-11-25:syp"
    base = base_name("mash-referrals", "A", "2026-11-25")
    assert (manifest_name(base), receipt_name(base)) == ("mash-referrals_A_2026-11-25.manifest.json",
                                                         "mash-referrals_A_2026-11-25.receipt.json")


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xfe", "not a JSON receipt"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"format": RECEIPT_FORMAT + 1}).encode(), f"receipt format {RECEIPT_FORMAT + 1}"),
    (json.dumps({"format": RECEIPT_FORMAT, "status": "accepted"}).encode(), "key missing or malformed"),
])
def test_anything_else_is_an_invalid_receipt_naming_the_file(data, message):
    with pytest.raises(ReceiptInvalid, match=f"^r.json: .*{message}"):
        Receipt.parse(data, where="r.json")


def test_a_status_other_than_accepted_or_rejected_is_refused():
    data = _receipt().to_bytes().replace(b'"accepted"', b'"maybe"')
    with pytest.raises(ReceiptInvalid, match="'maybe' is neither accepted nor rejected"):
        Receipt.parse(data, where="r.json")


def test_read_document_raises_the_callers_error():
    with pytest.raises(KeyError, match="m.json: manifest format 1, this version reads 2"):
        read_document(b'{"format": 1}', where="m.json", what="manifest", version=2, error=KeyError)
