"""The recipient's checks of a delivery (``transfers.receive.verify``): every way a delivery is refused, and one accepted.

Deliveries are made here as the sender's encrypt step makes them (``encrypt_to_file`` with the
sender's signing key, ``escape_frame`` and ``to_csv``, a manifest of format 2 signed with
``sign_detached`` and written after its signature), then changed the way an attacker or a
broken sender would. Keys are the session's ``gpg`` keys, so these are integration tests.
The end-to-end case with the real sender steps is tests/integration/test_receive_verify.py.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from transfers.agreement import load_config
from transfers.agreement.signoff import agreement_sha256
from transfers.crypto import (
    encrypt_to_file,
    load_own_decryption_key,
    load_own_signing_key,
    load_recipient_key,
    load_signing_key,
    sign_detached,
)
from transfers.csv_escape import escape_frame
from transfers.errors import DeliveryPending, DeliveryRejected
from transfers.receive.verify import Delivery, delivery_base, open_delivery, pending_bases
from transfers.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

DAY = date(2026, 3, 2)
ME = "south-yorkshire-police"
REF = load_config(PROJECT_ROOT / "config").flow("mash-referrals.A")
FIELDS = REF.flow.shared_fields
SHA = agreement_sha256(REF.path)
SECRET_VALUE = "9434765919"  # a value that must never appear in a reason


def _rows(n: int) -> list[dict[str, str | None]]:
    cells = {"nhs_number": SECRET_VALUE, "date_of_birth": "1980", "postcode": "S60", "referral_date": "2026-03-01",
             "risk_level": "high", "category": "=HYPERLINK(\"http://x/\",\"y\")"}
    rows = [{"referral_id": f"R{i:06d}", **cells} for i in range(n)]
    if n > 2:
        rows[1]["category"], rows[2]["postcode"] = "'=already quoted", None  # round trips; empty -> None
    return rows


@dataclass
class Keys:
    recipient: Any
    own: Any
    signer: Any
    pinned: Any
    stranger: Any


@pytest.fixture(scope="module")
def keys(gpg_partner, gpg_sender) -> Keys:
    partner_secret = gpg_partner.home.export_secret(gpg_partner.fingerprint)
    return Keys(
        recipient=load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint),
        own=load_own_decryption_key(partner_secret, gpg_partner.fingerprint),
        signer=load_own_signing_key(gpg_sender.secret, gpg_sender.fingerprint),
        pinned=load_signing_key(gpg_sender.public_key_path, gpg_sender.fingerprint),
        # The recipient's own primary key can sign: a key that is not the sender's pinned one.
        stranger=load_own_signing_key(partner_secret, gpg_partner.fingerprint),
    )


def _csv(rows: list[dict[str, str | None]], columns: list[str], escape: bool = True) -> bytes:
    frame = pd.DataFrame(rows, columns=columns)
    out = io.StringIO()
    (escape_frame(frame) if escape else frame).to_csv(out, index=False, columns=columns)
    return out.getvalue().encode("utf-8")


def deliver(inbox: Path, keys: Keys, rows: list[dict[str, str | None]], *, parts: int = 1, day: date = DAY,
            base_day: date | None = None, columns: list[str] | None = None, part_signer: Any = "signer",
            manifest_signer: Any = "signer", edit: Callable[[dict[str, Any]], None] | None = None) -> str:
    """Write a delivery as the sender's encrypt step does; return its base name."""
    base = delivery_base(REF, base_day or day)
    inbox.mkdir(parents=True, exist_ok=True)
    size = -(-len(rows) // parts) if rows else 1
    chunks = [rows[i * size:(i + 1) * size] for i in range(parts)]
    files = []
    for i, chunk in enumerate(chunks, start=1):
        name = f"{base}.csv.pgp" if parts == 1 else f"{base}_part{i:03d}of{parts:03d}.csv.pgp"
        signer = getattr(keys, part_signer) if part_signer else None
        out = encrypt_to_file(_csv(chunk, columns or FIELDS), keys.recipient, inbox / name,
                              filename=name.removesuffix(".pgp"), signer=signer)
        files.append({"name": name, "size": out.size, "sha256": out.sha256, "rows": len(chunk)})
    manifest = {
        "format": 2, "agreement": {"id": REF.agreement.id, "version": REF.agreement.version, "sha256": SHA},
        "flow": REF.flow.id, "logical_date": day.isoformat(), "sender": REF.flow.from_, "recipient": ME,
        "recipient_fingerprint": keys.own.fingerprint, "sender_signing_fingerprint": keys.pinned.fingerprint,
        "fields": [{"name": f, "share": REF.flow.fields[f].share} for f in FIELDS], "formula_escape": True,
        "rows": len(rows), "files": files,
        "retention": {"controller": "x", "period": "P1Y", "destroy_by": (day + timedelta(days=365)).isoformat()},
        "sender_ledger_head": None, "ledger_head": None, "created_at": "2026-03-03T02:00:00+00:00",
    }
    if edit:
        edit(manifest)
    data = json.dumps(manifest, indent=2).encode("utf-8")
    signature = sign_detached(data, getattr(keys, manifest_signer)) if manifest_signer else None
    if signature is not None:
        (inbox / f"{base}.manifest.json.asc").write_text(signature)
    (inbox / f"{base}.manifest.json").write_bytes(data)
    return base


def opened(inbox: Path, keys: Keys, base: str | None = None, *, day: date = DAY, **kwargs: Any) -> Delivery:
    return open_delivery(inbox, base or delivery_base(REF, day), ref=kwargs.pop("ref", REF), me=kwargs.pop("me", ME),
                         logical_date=day, own_key=keys.own, sender_key=keys.pinned,
                         agreement_sha256=kwargs.pop("sha", SHA))


def rejected(inbox: Path, keys: Keys, *, read: bool = False, **kwargs: Any) -> str:
    with pytest.raises(DeliveryRejected) as caught:
        delivery = opened(inbox, keys, **kwargs)
        if read:
            for _ in delivery.parts():
                pass
    reason = caught.value.reason
    assert SECRET_VALUE not in reason and "HYPERLINK" not in reason and "BEGIN PGP" not in reason
    # A failed signature is tagged as such (a security incident at the recipient); no other check is.
    signature = ("signed by", "unsigned", "does not verify", "not an OpenPGP signature", "document signature")
    assert caught.value.kind == ("signature" if any(w in reason for w in signature) else "check"), reason
    return reason


# --------------------------------------------------------------------------- accepted


def test_an_intact_delivery_in_three_parts_reads_back_exactly_the_rows_sent(tmp_path, keys):
    rows = _rows(7)
    base = deliver(tmp_path, keys, rows, parts=3)

    delivery = opened(tmp_path, keys, base)
    parts = list(delivery.parts())

    assert [len(p) for p in parts] == [3, 3, 1] and [r for p in parts for r in p] == rows
    assert parts[0][0]["category"].startswith("=HYPERLINK")  # the sender's leading ' is taken off again
    assert parts[0][1]["category"] == "'=already quoted" and parts[0][2]["postcode"] is None
    manifest_bytes = (tmp_path / f"{base}.manifest.json").read_bytes()
    assert delivery.manifest_bytes == manifest_bytes
    assert delivery.manifest_sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    assert delivery.rows == 7 and delivery.fields == FIELDS and delivery.sender == REF.flow.from_
    assert delivery.destroy_by == DAY + timedelta(days=365)
    assert [f.name for f in delivery.files] == [f"{base}_part00{i}of003.csv.pgp" for i in (1, 2, 3)]
    assert "BEGIN PGP" not in repr(delivery)


def test_an_empty_delivery_has_one_part_with_no_rows(tmp_path, keys):
    deliver(tmp_path, keys, [])
    assert list(opened(tmp_path, keys).parts()) == [[]]


def test_pending_bases_lists_this_flows_deliveries_whose_manifest_arrived(tmp_path, keys):
    first, second = deliver(tmp_path, keys, _rows(1)), deliver(tmp_path, keys, _rows(1), day=DAY + timedelta(1))
    (tmp_path / "mash-referrals_A_x_2026-03-05.manifest.json").write_text("{}")  # another flow, id "A_x"
    (tmp_path / f"{delivery_base(REF, DAY + timedelta(2))}.csv.pgp").write_bytes(b"no manifest yet")

    assert pending_bases(tmp_path, "mash-referrals", "A") == [first, second]
    assert pending_bases(tmp_path, "mash-referrals", "B") == []


# --------------------------------------------------------------------------- not yet complete


def test_a_delivery_without_its_manifest_or_its_signature_is_pending(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2))
    manifest = tmp_path / f"{base}.manifest.json"
    data = manifest.read_bytes()
    manifest.unlink()
    with pytest.raises(DeliveryPending, match=base):
        opened(tmp_path, keys)
    manifest.write_bytes(data)
    (tmp_path / f"{base}.manifest.json.asc").unlink()
    with pytest.raises(DeliveryPending):
        opened(tmp_path, keys)


# --------------------------------------------------------------------------- the manifest


def test_a_manifest_signed_by_another_key_is_rejected_naming_the_pinned_one(tmp_path, keys):
    deliver(tmp_path, keys, _rows(2), manifest_signer="stranger")
    reason = rejected(tmp_path, keys)
    assert f"signed by key {keys.stranger.signing_key.fingerprint.keyid}" in reason
    assert f"not {REF.flow.from_}'s pinned signing key {keys.pinned.fingerprint}" in reason


def test_a_manifest_changed_after_signing_or_with_no_signature_is_rejected(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2))
    manifest = tmp_path / f"{base}.manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b'"rows": 2', b'"rows": 3'))
    assert "does not verify" in rejected(tmp_path, keys)
    (tmp_path / f"{base}.manifest.json.asc").write_text("not a signature\n")
    assert "not an OpenPGP signature" in rejected(tmp_path, keys)


def test_a_signed_manifest_that_is_not_json_or_of_another_format_is_rejected(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2))
    manifest = tmp_path / f"{base}.manifest.json"
    manifest.write_bytes(b"rows: 2\n")
    (tmp_path / f"{base}.manifest.json.asc").write_text(sign_detached(b"rows: 2\n", keys.signer))
    assert "not a JSON manifest" in rejected(tmp_path, keys)

    deliver(tmp_path, keys, _rows(2), edit=lambda m: m.update(format=1))
    assert "manifest format 1, this version reads 2" in rejected(tmp_path, keys)
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m.pop("retention"))
    assert "manifest key missing or malformed" in rejected(tmp_path, keys)


def test_a_manifest_for_an_agreement_version_we_do_not_hold_is_rejected_naming_both(tmp_path, keys):
    def older(manifest: dict[str, Any]) -> None:
        manifest["agreement"].update(version="1.0", sha256="ab12" + "0" * 60)

    deliver(tmp_path, keys, _rows(2), edit=older)
    reason = rejected(tmp_path, keys)
    assert f"manifest is for agreement mash-referrals version 1.0 (sha256 ab1200000000…), we hold mash-referrals " \
           f"version {REF.agreement.version} ({SHA[:12]}…)" in reason
    # The same version number over other text is another agreement too.
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m["agreement"].update(sha256="cd34" + "0" * 60))
    assert "sha256 cd3400000000…" in rejected(tmp_path, keys)


@pytest.mark.parametrize(("key", "value"), [("flow", "B"), ("sender", "rotherham-nhs-ft"),
                                            ("recipient", "rotherham-childrens-services")])
def test_a_manifest_for_another_flow_sender_or_recipient_is_rejected(tmp_path, keys, key, value):
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m.update({key: value}))
    assert f"{key} is {value!r}, expected" in rejected(tmp_path, keys)


def test_an_old_delivery_replayed_under_a_new_date_is_rejected(tmp_path, keys):
    new_day = DAY + timedelta(days=30)
    deliver(tmp_path, keys, _rows(2), day=DAY, base_day=new_day)  # the old manifest, files renamed to the new date

    reason = rejected(tmp_path, keys, day=new_day)

    assert f"logical_date is '{DAY.isoformat()}', expected '{new_day.isoformat()}'" in reason


def test_manifest_fields_other_than_the_flows_shared_fields_are_rejected(tmp_path, keys):
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m["fields"].append({"name": "forename", "share": "keep"}))
    assert "are not the flow's shared fields" in rejected(tmp_path, keys)
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m["fields"].reverse())
    assert "(in this order)" in rejected(tmp_path, keys)


# --------------------------------------------------------------------------- the files


def test_a_listed_file_missing_or_of_another_size_or_hash_is_rejected(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(4), parts=2)
    part = tmp_path / f"{base}_part002of002.csv.pgp"
    data = part.read_bytes()
    part.unlink()
    assert rejected(tmp_path, keys) == f"{part.name}: listed in the manifest but missing"
    part.write_bytes(data + b"\0")
    assert f"{part.name}: {len(data) + 1} bytes, the manifest says {len(data)}" in rejected(tmp_path, keys)
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert rejected(tmp_path, keys) == f"{part.name}: SHA-256 differs from the manifest's"


def test_an_extra_encrypted_file_beside_the_delivery_is_rejected(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2))
    (tmp_path / f"{base}_part002of002.csv.pgp").write_bytes((tmp_path / f"{base}.csv.pgp").read_bytes())
    assert f"{base}_part002of002.csv.pgp beside the delivery but not in its manifest" in rejected(tmp_path, keys)


def test_a_manifest_listing_no_file_or_one_file_twice_is_rejected(tmp_path, keys):
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m.update(files=[], rows=0))
    assert rejected(tmp_path, keys).endswith("lists no files")

    def twice(manifest: dict[str, Any]) -> None:
        manifest["files"].append(dict(manifest["files"][0]))
        manifest["rows"] *= 2

    deliver(tmp_path, keys, _rows(2), edit=twice)
    assert rejected(tmp_path, keys).endswith("lists a file twice")


def test_a_manifest_naming_a_file_outside_the_inbox_is_rejected(tmp_path, keys):
    deliver(tmp_path / "inbox", keys, _rows(2), edit=lambda m: m["files"][0].update(name="../elsewhere.csv.pgp"))
    assert "not a part of delivery" in rejected(tmp_path / "inbox", keys)


# --------------------------------------------------------------------------- the parts, as they are read


def test_an_unsigned_part_is_rejected_when_read(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2), part_signer=None)
    assert rejected(tmp_path, keys, read=True).startswith(f"{base}.csv.pgp: unsigned")


def test_a_part_signed_by_another_key_is_rejected_when_read(tmp_path, keys):
    deliver(tmp_path, keys, _rows(2), part_signer="stranger")
    reason = rejected(tmp_path, keys, read=True)
    assert f"signed by key {keys.stranger.signing_key.fingerprint.keyid}, not {REF.flow.from_}'s pinned" in reason


@pytest.mark.parametrize(("columns", "detail"), [
    ([*FIELDS, "forename"], "extra forename"),
    ([f for f in FIELDS if f != "postcode"], "missing postcode"),
    ([*FIELDS[1:], FIELDS[0]], "the same names in another order"),
])
def test_a_part_with_an_extra_missing_or_reordered_column_is_rejected_naming_it(tmp_path, keys, columns, detail):
    base = deliver(tmp_path, keys, [{**r, "forename": "Ann"} for r in _rows(2)], columns=columns)
    assert rejected(tmp_path, keys, read=True) == f"{base}.csv.pgp: columns are not the flow's fields ({detail})"


def test_a_part_with_another_row_count_than_its_manifest_entry_is_rejected_mid_stream(tmp_path, keys):
    def swap(manifest: dict[str, Any]) -> None:  # totals still agree: only the per-part check can see it
        manifest["files"][0]["rows"], manifest["files"][1]["rows"] = 1, 3

    base = deliver(tmp_path, keys, _rows(4), parts=2, edit=swap)
    delivery = opened(tmp_path, keys)
    parts = delivery.parts()

    with pytest.raises(DeliveryRejected, match=f"{base}_part001of002.csv.pgp: 2 rows, the manifest says 1"):
        next(parts)


def test_a_manifest_whose_files_do_not_add_up_to_its_rows_is_rejected(tmp_path, keys):
    deliver(tmp_path, keys, _rows(2), edit=lambda m: m.update(rows=3))
    assert "its files' rows add up to 2, not its 3" in rejected(tmp_path, keys)


def test_a_part_changed_after_the_delivery_was_opened_is_rejected_when_read(tmp_path, keys):
    base = deliver(tmp_path, keys, _rows(2))
    delivery = opened(tmp_path, keys)
    part = tmp_path / f"{base}.csv.pgp"
    data = part.read_bytes()
    part.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))

    with pytest.raises(DeliveryRejected, match="changed since the delivery was checked"):
        list(delivery.parts())
