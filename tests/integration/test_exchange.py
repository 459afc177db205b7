"""Both ends of flow A: Children's Services sends, the police receive, load and return a signed receipt.

Two parties with separate homes, ledgers, keys and SFTP servers (``exchange_world``); the real
sshd, PostgreSQL and gpg. Each bad delivery is made from a real one by changing exactly one thing
and re-signing everything else with the sender's own key, so the check named is the one that trips.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE, read_delivery
from tests.integration.exchange_world import FLOW, RECIPIENT, SENDER, Exchange, exchange, police_keys, police_sshd
from transfers.crypto import encrypt_to_file, load_own_signing_key, load_recipient_key, sign_detached
from transfers.errors import DeliveryPending, DeliveryRejected, ReceiptRejected
from transfers.ledger.records import Acknowledgement, Incident, Received
from transfers.receipt import RECEIPTS_DIR, Receipt, receipt_name

__all__ = ["exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

BASE = f"mash-referrals_A_{LOGICAL_DATE.isoformat()}"


def _table_rows(ex: Exchange, table: str) -> list[dict]:
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            result = conn.execute(sa.text(f'SELECT * FROM "{table}" ORDER BY referral_id'))
            return [dict(row._mapping) for row in result]
    finally:
        engine.dispose()


def _count(ex: Exchange, table_like: str = "received_%") -> int:
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("received_mash")]
            return sum(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables)
    finally:
        engine.dispose()


def _receipt(ex: Exchange) -> Receipt:
    path = ex.inbox / RECEIPTS_DIR / receipt_name(BASE)
    return Receipt.parse(path.read_bytes(), where=str(path))


def _police_records(ex: Exchange) -> list[Received]:
    with ex.police.settings.open_ledger() as ledger:
        return list(ledger.records(Received))


def test_a_delivery_is_received_loaded_as_sent_and_acknowledged_with_a_signed_receipt(exchange, gpg_partner):
    exchange.send()
    parts = sorted(exchange.inbox.glob(f"{BASE}*.pgp"))
    sent = read_delivery(gpg_partner, parts[0])  # what gpg --decrypt shows the police, before they receive
    result = exchange.police.receive()
    assert result["status"] == "accepted" and result["rows"] == len(sent) and not result["already"]
    rows = _table_rows(exchange, result["table"])
    assert [r["referral_id"] for r in rows] == sorted(sent["referral_id"].astype(str))
    by_id = {r["referral_id"]: r for r in rows}
    for record in sent.astype(str).replace({"nan": None}).to_dict("records"):
        loaded = by_id[record["referral_id"]]
        assert {k: loaded[k] for k in record} == record
        assert str(loaded["logical_date"]) == LOGICAL_DATE.isoformat() and loaded["destroy_by"] is not None
    # The police's ledger holds the receipt, and the receipt it returned is signed by the police's key.
    [received] = _police_records(exchange)
    assert (received.status, received.rows, received.sender) == ("accepted", len(sent), SENDER)
    receipt = _receipt(exchange)
    assert receipt.accepted and receipt.manifest_sha256 == received.manifest_sha256
    signature = exchange.inbox / RECEIPTS_DIR / (receipt_name(BASE) + ".asc")
    status = gpg_partner.home.verify_detached(signature, exchange.inbox / RECEIPTS_DIR / receipt_name(BASE))
    assert any(exchange.keys.signing_fingerprint in line for line in status if "VALIDSIG" in line)
    # The encrypted files left the inbox: the rows are in the store now.
    assert not list(exchange.inbox.glob(f"{BASE}*.pgp"))
    # The sender collects the receipt over its SFTP connection, verifies it against the police's pinned
    # key, and records the acknowledgement with the hash of the receipt the police recorded returning.
    collected = exchange.collect()
    assert collected["status"] == "acknowledged" and collected["receipt_sha256"] == received.receipt_sha256
    [ack] = exchange.sender_records(Acknowledgement)
    assert (ack.status, ack.rows, ack.receipt_sha256, ack.signer_fingerprint) == (
        "acknowledged", len(sent), received.receipt_sha256, exchange.keys.signing_fingerprint)
    # The sender's IG report shows the disclosure acknowledged, with the police's key and the receipt's hash.
    from transfers.reports.ig import build

    world = exchange.sender
    with world.settings.open_ledger() as ledger:
        doc = build(world.settings, world.config, ledger, LOGICAL_DATE, LOGICAL_DATE + timedelta(days=2))
    assert doc["totals"]["acknowledged"] == 1 and doc["totals"]["unacknowledged"] == 0
    [row] = doc["receipts"]
    assert (row["status"], row["signer"], row["receipt_sha256"]) == (
        "acknowledged", exchange.keys.signing_fingerprint, received.receipt_sha256)


def test_receiving_the_same_delivery_twice_loads_it_once(exchange):
    exchange.send()
    first = exchange.police.receive()
    again = exchange.police.receive()
    assert again["already"] and again["rows"] == first["rows"]
    assert _count(exchange) == first["rows"]
    assert len(_police_records(exchange)) == 1


def test_a_crash_between_load_and_receipt_recovers_on_the_next_attempt(exchange, monkeypatch):
    import transfers.receive.run as run_module

    exchange.send()
    real = run_module._write_receipt
    monkeypatch.setattr(run_module, "_write_receipt", lambda *a, **k: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        exchange.police.receive()
    assert _count(exchange) > 0 and not _police_records(exchange)  # loaded, no receipt yet
    monkeypatch.setattr(run_module, "_write_receipt", real)
    result = exchange.police.receive()
    assert result["status"] == "accepted" and _count(exchange) == result["rows"]  # not loaded twice
    assert len(_police_records(exchange)) == 1 and _receipt(exchange).accepted


def test_nothing_in_the_inbox_yet_is_pending_not_a_failure(exchange):
    with pytest.raises(DeliveryPending):
        exchange.police.receive()
    assert not _police_records(exchange)


# ---------------------------------------------------------------- rejections: nothing loaded, signed rejection


def _sender_key(ex: Exchange, gpg_sender):
    return load_own_signing_key(gpg_sender.secret, gpg_sender.fingerprint)


def _reseal(ex: Exchange, gpg_sender, *, edit_csv=None, part_signer="sender", edit_manifest=None,
            manifest_signer=None) -> None:
    """Rewrite the delivered parts and manifest: ``edit_csv`` on each part's rows, re-encrypted to the police,
    signed by ``part_signer`` ("sender", None for unsigned, or a SigningKey); the manifest updated to the new
    files, ``edit_manifest`` applied, and re-signed by the sender (or ``manifest_signer``)."""
    keys = ex.sender.settings.keys
    recipient = ex.sender.config.flow(FLOW).flow.to[0]
    to_police = load_recipient_key(keys / recipient.key_file, recipient.pgp_fingerprint)
    sender = _sender_key(ex, gpg_sender)
    manifest_path = ex.inbox / f"{BASE}.manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    from transfers.crypto.decrypt import decrypt_verified
    from transfers.crypto.keys import own_decryption_key

    police_key = own_decryption_key(ex.police.resolvers().secret, RECIPIENT, recipient.pgp_fingerprint)
    for entry in manifest["files"]:
        path = ex.inbox / entry["name"]
        text = decrypt_verified(path.read_bytes(), police_key, sender, where=entry["name"]).decode("utf-8")
        if edit_csv is not None:
            text = edit_csv(text)
        signer = sender if part_signer == "sender" else part_signer
        written = encrypt_to_file(text.encode("utf-8"), to_police, path, filename=entry["name"], signer=signer)
        entry["size"], entry["sha256"] = written.size, written.sha256
    if edit_manifest is not None:
        edit_manifest(manifest)
    data = json.dumps(manifest, indent=2).encode("utf-8")
    manifest_path.write_bytes(data)
    (ex.inbox / f"{BASE}.manifest.json.asc").write_text(sign_detached(data, manifest_signer or sender))


def _other_signer(gpg_home):
    fpr = gpg_home.generate_key("Not the sender <other@example.invalid>", algo="cv25519", encryption_subkey=False)
    return load_own_signing_key(gpg_home.export_secret(fpr), fpr)


def _add_column(text: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for i, row in enumerate(rows):
        writer.writerow([*row, "forename" if i == 0 else "Alice"])
    return out.getvalue()


def _drop_last_column(text: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(row[:-1] for row in csv.reader(io.StringIO(text)))
    return out.getvalue()


def _flip_a_byte(ex: Exchange) -> None:
    part = sorted(ex.inbox.glob(f"{BASE}*.pgp"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


REJECTIONS = {
    "part signed by another key": (lambda ex, s, h: _reseal(ex, s, part_signer=_other_signer(h)),
                                   "signed by"),
    "part unsigned": (lambda ex, s, h: _reseal(ex, s, part_signer=None), "unsigned"),
    "manifest signed by another key": (lambda ex, s, h: _reseal(ex, s, manifest_signer=_other_signer(h)),
                                       "manifest"),
    "hash differs from the manifest": (lambda ex, s, h: _flip_a_byte(ex), "SHA-256"),
    "extra column": (lambda ex, s, h: _reseal(ex, s, edit_csv=_add_column), "forename"),
    "missing column": (lambda ex, s, h: _reseal(ex, s, edit_csv=_drop_last_column), "category"),
    "agreement version we do not hold": (
        lambda ex, s, h: _reseal(ex, s, edit_manifest=lambda m: m["agreement"].update(version="0.9",
                                                                                       sha256="0" * 64)),
        "0.9"),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_a_bad_delivery_is_rejected_quarantined_and_answered_with_a_signed_rejection(exchange, gpg_sender,
                                                                                     gpg_home, case):
    spoil, named = REJECTIONS[case]
    exchange.send()
    spoil(exchange, gpg_sender, gpg_home)
    with pytest.raises(DeliveryRejected) as caught:
        exchange.police.receive()
    assert named in caught.value.reason
    assert _count(exchange) == 0  # nothing loaded
    [received] = _police_records(exchange)
    assert received.status == "rejected" and named in received.reason
    receipt = _receipt(exchange)
    assert receipt.status == "rejected" and named in receipt.reason and receipt.rows == 0
    quarantine = exchange.police.settings.layout.quarantine_dir("mash-referrals", "A", LOGICAL_DATE, SENDER)
    held = sorted(p.name for p in quarantine.iterdir())
    assert "reason.json" in held and any(n.endswith(".pgp") for n in held)
    assert not list(exchange.inbox.glob(f"{BASE}*"))  # moved out of the inbox, still encrypted
    for path in quarantine.glob("*.pgp"):
        assert b"referral_id" not in path.read_bytes()
    # A rejection found after the manifest's signature verified keeps the controller's date for the quarantine.
    part_level = case in {"part signed by another key", "part unsigned", "extra column", "missing column"}
    assert (json.loads((quarantine / "reason.json").read_text())["destroy_by"] is not None) == part_level
    # A failed signature is also a security incident at the police (and only then), once.
    with exchange.police.settings.open_ledger() as ledger:
        incidents = list(ledger.records(Incident))
    signature = case in {"part signed by another key", "part unsigned", "manifest signed by another key"}
    assert [(i.what, i.party, i.recipient) for i in incidents] == (
        [("signature-failed", RECIPIENT, SENDER)] if signature else [])
    assert all(i.evidence.startswith("manifest sha256 ") for i in incidents)
    # The sender verifies the signed rejection and records it; its wait fails with the police's reason.
    with pytest.raises(ReceiptRejected, match=re.escape(named)):
        exchange.collect()
    [ack] = exchange.sender_records(Acknowledgement)
    assert ack.status == "rejected" and named in ack.reason and ack.receipt_sha256 == received.receipt_sha256
    # Where the manifest itself was replaced on the way, the sender says the police judged another manifest.
    assert ("is not the one sent" in ack.reason) == (case != "hash differs from the manifest")


def test_an_old_delivery_replayed_under_a_new_date_is_rejected(exchange, tmp_path):
    exchange.send()
    kept = tmp_path / "copied"
    kept.mkdir()
    for path in exchange.inbox.glob(f"{BASE}*"):  # someone with inbox access keeps a copy of day D
        shutil.copy2(path, kept / path.name)
    exchange.police.receive()  # day D accepted; now the copy is dropped in as day D+1
    day2 = LOGICAL_DATE + timedelta(days=1)
    base2 = f"mash-referrals_A_{day2.isoformat()}"
    for path in kept.iterdir():
        shutil.copy2(path, exchange.inbox / path.name.replace(BASE, base2))
    with pytest.raises(DeliveryRejected) as caught:
        exchange.police.receive(day2)
    assert LOGICAL_DATE.isoformat() in caught.value.reason
    rows = _count(exchange)
    assert rows == _police_records(exchange)[0].rows  # only day D's rows
