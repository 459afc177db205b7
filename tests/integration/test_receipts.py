"""The sender collects the recipient's signed receipt (issue 11, item 5, sender side) from real sshd, keys by gpg.

Flow A is delivered to south-yorkshire-police for real; the test then plays the recipient and
writes a receipt, signed with a key made at run time and pinned as that partner's signing key,
into ``<remote_dir>/receipts/`` on the server, as the recipient's writer does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import LOGICAL_DATE, pin_and_sign
from tests.support.tables import table_rows
from transfers.acknowledge import collect_receipt
from transfers.agreement import load_config
from transfers.crypto import load_own_signing_key, sign_detached
from transfers.errors import ReceiptInvalid, ReceiptOverdue, ReceiptPending, ReceiptRejected
from transfers.ledger.records import Acknowledgement, Disclosure, Incident, ReceiptRefused
from transfers.pipeline import run_flow
from transfers.receipt import Receipt, ReceiptFile, delivery_id
from transfers.steps.await_receipt import await_receipt

pytestmark = pytest.mark.integration

DS = LOGICAL_DATE.isoformat()
BASE_A = f"mash-referrals_A_{DS}"
PARTNER = "south-yorkshire-police"


@pytest.fixture
def delivered(world, gpg_home):
    """Flow A delivered to its recipient, whose own signing key (made now) is pinned; its secret and a stranger's."""
    keys = {}
    for name in ("recipient", "stranger"):
        fpr = gpg_home.generate_key(f"{name} <{name}@example.invalid>", algo="cv25519", encryption_subkey=False)
        keys[name] = (fpr, gpg_home.export_secret(fpr))
    key_file = world.settings.keys / f"{PARTNER}.asc"
    exported = gpg_home.export_public(keys["recipient"][0], world.root / "recipient-signing.asc")
    key_file.write_text(key_file.read_text() + exported.read_text())
    pin_and_sign(world, PARTNER, keys["recipient"][0], keys["recipient"][1])
    world.config = load_config(world.settings.config_dir)
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    return keys


def _receipt(world, keys, **changes: Any) -> Receipt:
    """What the recipient returns for the delivery it received: from the manifest that reached it."""
    manifest_path = world.remote_root / "inbound/mash" / f"{BASE_A}.manifest.json"
    manifest = json.loads(manifest_path.read_bytes())
    fields: dict[str, Any] = {
        "delivery_id": delivery_id("mash-referrals", "A", DS, PARTNER), "agreement": manifest["agreement"],
        "flow": "A", "logical_date": DS, "sender": "rotherham-childrens-services", "recipient": PARTNER,
        "manifest_sha256": hashlib.sha256(manifest_path.read_bytes()).hexdigest(),
        "files": tuple(ReceiptFile(f["name"], f["size"], f["sha256"]) for f in manifest["files"]),
        "rows": manifest["rows"], "status": "accepted", "reason": "",
        "received_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "destroy_by": manifest["retention"]["destroy_by"], "recipient_ledger_head": {"seq": 3, "hash": "cd" * 32},
        "signer_fingerprint": keys["recipient"][0],
    }
    fields.update(changes)
    return Receipt(**fields)


def _return(world, keys, receipt: Receipt, signer: str = "recipient") -> bytes:
    """Write the receipt as the recipient does: its signature first, then the receipt."""
    folder = world.remote_root / "inbound/mash/receipts"
    folder.mkdir(exist_ok=True)
    data = receipt.to_bytes()
    fpr, secret = keys[signer]
    (folder / f"{BASE_A}.receipt.json.asc").write_text(sign_detached(data, load_own_signing_key(secret, fpr)))
    (folder / f"{BASE_A}.receipt.json").write_bytes(data)
    return data


def _collect(world, now: datetime | None = None) -> Any:
    run = world.run("mash-referrals.A")
    with world.settings.open_ledger() as ledger:
        return collect_receipt(run, world.resolvers(), ledger, run.recipient(PARTNER), now=now)


def _records(world, cls: type) -> list[Any]:
    with world.settings.open_ledger() as ledger:
        return list(ledger.records(cls))


def test_a_signed_receipt_is_collected_over_sftp_and_recorded_as_acknowledged(world, delivered):
    data = _return(world, delivered, _receipt(world, delivered))
    run = world.run("mash-referrals.A")

    with world.settings.open_ledger() as ledger:
        result = await_receipt(run, world.resolvers(), ledger, run.recipient(PARTNER))

    assert result["status"] == "acknowledged"
    assert result["receipt_sha256"] == hashlib.sha256(data).hexdigest()
    [ack] = _records(world, Acknowledgement)
    [disclosure] = _records(world, Disclosure)
    assert ack.receipt_sha256 == hashlib.sha256(data).hexdigest()
    assert ack.signer_fingerprint == delivered["recipient"][0]
    assert ack.rows == disclosure.rows == 40
    assert (ack.flow, ack.logical_date, ack.recipient) == ("mash-referrals.A", LOGICAL_DATE, PARTNER)


def test_a_rejection_is_recorded_and_fails_with_the_recipient_s_reason(world, delivered):
    _return(world, delivered, _receipt(world, delivered, status="rejected", rows=0,
                                       reason="column nhs_number_pseudonym missing"))

    with pytest.raises(ReceiptRejected, match="column nhs_number_pseudonym missing"):
        _collect(world)

    [ack] = _records(world, Acknowledgement)
    assert (ack.status, ack.reason) == ("rejected", "column nhs_number_pseudonym missing")


def test_a_receipt_signed_by_a_third_key_is_refused_not_acknowledged(world, delivered):
    data = _return(world, delivered, _receipt(world, delivered), signer="stranger")

    with pytest.raises(ReceiptInvalid, match="does not verify"):
        _collect(world)

    assert _records(world, Acknowledgement) == []
    [refused] = _records(world, ReceiptRefused)
    assert refused.receipt_sha256 == hashlib.sha256(data).hexdigest()
    # A security incident at the sender, once however often the receipt is looked at again.
    with pytest.raises(ReceiptInvalid):
        _collect(world)
    [incident] = _records(world, Incident)
    assert (incident.what, incident.party, incident.recipient) == ("signature-failed", "rotherham-childrens-services",
                                                                   PARTNER)
    assert incident.evidence == f"receipt sha256 {refused.receipt_sha256}"
    assert incident.where.endswith(f"receipts/{BASE_A}.receipt.json") and "does not verify" in incident.detail


def test_a_receipt_that_is_only_for_another_manifest_is_no_incident(world, delivered):
    _return(world, delivered, _receipt(world, delivered, manifest_sha256="0" * 64))
    with pytest.raises(ReceiptInvalid):
        _collect(world)
    assert _records(world, Incident) == []  # signed by the recipient: a refusal, not a security incident


def test_a_receipt_for_another_manifest_is_refused(world, delivered):
    _return(world, delivered, _receipt(world, delivered, manifest_sha256="0" * 64))

    with pytest.raises(ReceiptInvalid, match="manifest_sha256"):
        _collect(world)

    assert _records(world, Acknowledgement) == []
    assert len(_records(world, ReceiptRefused)) == 1


def test_no_receipt_is_pending_then_overdue(world, delivered):
    [disclosure] = _records(world, Disclosure)

    with pytest.raises(ReceiptPending, match="left of PT12H"):
        _collect(world)
    with pytest.raises(ReceiptOverdue, match="no receipt .* within PT12H"):
        _collect(world, now=disclosure.when + timedelta(hours=12, seconds=1))
    assert _records(world, Acknowledgement) == [] and _records(world, ReceiptRefused) == []


def test_cli_receipts_and_run_wait_receipt(world, delivered, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one table row per disclosure
    pending = cli("receipts", "--pending")
    assert pending.exit_code == 0, pending.output
    assert PARTNER in pending.output and "pending" in pending.output and "left" in pending.output

    data = _return(world, delivered, _receipt(world, delivered))
    waited = cli("run", "mash-referrals.A", "--date", DS, "--wait-receipt", "--poll", "1")
    assert waited.exit_code == 0, waited.output
    assert "already delivered" in waited.output
    assert f"{PARTNER}: receipt acknowledged, 40 rows loaded" in waited.output
    assert hashlib.sha256(data).hexdigest() in waited.output

    shown = cli("receipts", "--flow", "mash-referrals.A")
    assert shown.exit_code == 0, shown.output
    assert "acknowledged" in shown.output and "40 rows loaded" in shown.output
    assert "no disclosures awaiting a receipt" in cli("receipts", "--pending").output


def test_cli_run_wait_receipt_fails_on_a_refused_receipt(world, delivered, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    _return(world, delivered, _receipt(world, delivered), signer="stranger")

    result = cli("run", "mash-referrals.A", "--date", DS, "--wait-receipt", "--poll", "1")

    assert result.exit_code == 1, result.output
    shown = cli("receipts")
    # A refused receipt never counts: still pending, one refused receipt.
    [row] = [r for r in table_rows(shown.output) if PARTNER in r["flow, date, partner"]]
    assert row["receipt"].startswith("pending") and row["refused"] == "1"
