"""Signed deliveries (issue 11, items 2 and 3, sender side) against real PostgreSQL, sshd and gpg.

The recipient's ``gpg`` knows the sender's public signing key (as a partner that imported it
would): each part must decrypt with a good signature from the sender's pinned fingerprint, and the
manifest's detached signature must verify with ``gpg --verify``. The manifest carries what the
recipient checks the delivery against.
"""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE
from transfers.devkit.gpg import signed_by
from transfers.errors import KeyRefused, SecretMissing
from transfers.ledger.records import DeliveryIntent, Disclosure, QualityResult
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

DS = LOGICAL_DATE.isoformat()
BASE_A = f"mash-referrals_A_{DS}"


def test_each_part_decrypts_with_a_good_signature_from_the_senders_pinned_key(world, gpg_partner, gpg_sender):
    world.settings = world.settings.model_copy(update={"delivery_max_rows": 15})  # 40 rows: three parts
    run_flow(world.run("mash-referrals.A"), world.resolvers())

    parts = world.delivered("inbound/mash")
    assert len(parts) == 3
    for part in parts:
        plaintext, status = gpg_partner.home.decrypt_with_status(part)
        assert plaintext.startswith(b"referral_id,")
        assert signed_by(status) == gpg_sender.fingerprint == world.config.protocol.signatory(
            "rotherham-childrens-services").signing_fingerprint


def test_the_manifest_is_signed_and_carries_what_the_recipient_checks(world, gpg_partner, gpg_sender):
    run_flow(world.run("mash-referrals.A"), world.resolvers())

    inbound = world.remote_root / "inbound/mash"
    manifest_path, signature = inbound / f"{BASE_A}.manifest.json", inbound / f"{BASE_A}.manifest.json.asc"
    assert world.remote_names("inbound/mash") == sorted([f"{BASE_A}.csv.pgp", manifest_path.name, signature.name])
    assert signed_by(gpg_partner.home.verify_detached(signature, manifest_path)) == gpg_sender.fingerprint

    manifest = json.loads(manifest_path.read_text())
    agreement_file = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    version = yaml.safe_load(agreement_file.read_text())["version"]
    assert manifest["format"] == 2
    assert manifest["agreement"] == {"id": "mash-referrals", "version": version,
                                     "sha256": hashlib.sha256(agreement_file.read_bytes()).hexdigest()}
    assert (manifest["flow"], manifest["logical_date"]) == ("A", DS)
    assert (manifest["sender"], manifest["recipient"]) == ("rotherham-childrens-services", "south-yorkshire-police")
    assert manifest["sender_signing_fingerprint"] == gpg_sender.fingerprint
    assert manifest["fields"] == [
        {"name": "referral_id", "share": "keep"}, {"name": "nhs_number", "share": "pseudonymise"},
        {"name": "date_of_birth", "share": "generalise", "to": "year"},
        {"name": "postcode", "share": "generalise", "to": "district"}, {"name": "referral_date", "share": "keep"},
        {"name": "risk_level", "share": "keep"}, {"name": "category", "share": "keep"}]
    (part,) = world.delivered("inbound/mash")
    data = part.read_bytes()
    assert manifest["files"] == [{"name": part.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                  "rows": 40}]
    assert manifest["rows"] == 40 == len(gpg_partner.home.decrypt(part).decode().splitlines()) - 1
    destroy_by = LOGICAL_DATE.replace(year=LOGICAL_DATE.year + 6)  # P6Y (a 29 February would need care)
    assert manifest["retention"] == {"controller": "rotherham-childrens-services", "period": "P6Y",
                                     "destroy_by": destroy_by.isoformat()}
    # The sender's ledger head when the outbox was sealed: an entry of the ledger, with its hash.
    head = manifest["sender_ledger_head"]
    ledger = world.settings.open_ledger()
    sealed = next(e for e in ledger.entries() if e.seq == head["seq"])
    assert sealed.hash == head["hash"] and manifest["ledger_head"] == head

    # Remote purge and reconcile see the signature: it is in the intent and the disclosure.
    names = {f"inbound/mash/{BASE_A}.manifest.json.asc", f"inbound/mash/{BASE_A}.manifest.json"}
    (intent,) = ledger.records(DeliveryIntent, flow="mash-referrals.A")
    (disclosure,) = ledger.records(Disclosure, flow="mash-referrals.A")
    assert names <= {f.remote_path.split("/", 1)[1] for f in intent.files}
    assert names <= {f.remote_path.split("/", 1)[1] for f in disclosure.files}
    # The archived copy keeps the signature beside the manifest.
    archived = sorted(p.name for p in (world.settings.home / "archive").rglob(f"{BASE_A}*"))
    assert signature.name in archived and manifest_path.name in archived


def test_a_missing_signing_secret_fails_the_run_before_anything_is_sent(world):
    del world.secrets["transfers_signing_key"]

    with pytest.raises(SecretMissing, match="transfers_signing_key"):
        run_flow(world.run("mash-referrals.A"), world.resolvers())

    assert world.remote_names("inbound/mash") == []
    assert not list(world.settings.home.rglob("*.manifest.json"))
    # Stopped at check_agreement: the extract and quality steps never ran.
    with world.settings.open_ledger() as ledger:
        assert list(ledger.records(QualityResult)) == []


def test_a_signing_key_that_is_not_the_senders_pinned_one_is_refused_naming_both(world, gpg_home, gpg_sender):
    other = gpg_home.generate_key("Someone else <else@example.invalid>", algo="cv25519", encryption_subkey=False)
    world.secrets["transfers_signing_key"] = gpg_home.export_secret(other)

    with pytest.raises(KeyRefused) as caught:
        run_flow(world.run("mash-referrals.A"), world.resolvers())

    message = str(caught.value)
    assert other in message and gpg_sender.fingerprint in message and "rotherham-childrens-services" in message
    assert "PRIVATE KEY" not in message
    assert world.remote_names("inbound/mash") == []


def test_validate_names_a_sender_without_a_signing_fingerprint(world, cli):
    protocol = world.settings.config_dir / "protocol.yaml"
    data = yaml.safe_load(protocol.read_text())
    for signatory in data["signatories"]:
        if signatory["id"] == "rotherham-nhs-ft":
            del signatory["signing_fingerprint"]
    protocol.write_text(yaml.safe_dump(data, sort_keys=False))

    result = cli("validate")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"{protocol}: signatories: 'rotherham-nhs-ft' sends flow B of mash-referrals but has no " \
           "signing_fingerprint" in text


def test_validate_checks_the_senders_public_signing_key(world, cli):
    assert cli("validate").exit_code == 0
    (world.settings.keys / "rotherham-nhs-ft.asc").unlink()

    result = cli("validate")

    assert result.exit_code == 2, result.output
    assert "signing key of rotherham-nhs-ft" in result.output and "rotherham-nhs-ft.asc" in result.output


def test_validate_without_the_signing_secret_says_which_secret(world, cli):
    del world.secrets["transfers_signing_key"]

    result = cli("validate")

    assert result.exit_code == 2, result.output
    assert "transfers_signing_key" in result.output and "signing key of" in result.output


def test_validate_connect_checks_the_signing_secret_is_the_senders_pinned_key(world, cli, gpg_home, gpg_sender,
                                                                             monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # one table row per check
    ok = cli("validate", "--connect", "mash-referrals.A")
    assert ok.exit_code == 0, ok.output
    assert "signing key rotherham-childrens-services" in ok.output
    other = gpg_home.generate_key("Someone else <else@example.invalid>", algo="cv25519", encryption_subkey=False)
    world.secrets["transfers_signing_key"] = gpg_home.export_secret(other)

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "signing key rotherham-childrens-services" in text and other in text and gpg_sender.fingerprint in text
    assert "PRIVATE KEY" not in result.output
