"""The recipient opens what the real sender steps sealed (check_agreement .. encrypt), against real gpg and PostgreSQL.

The sender's outbox plays the recipient's inbox: the same files the deliver step would upload.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE, read_delivery
from transfers.agreement import load_config
from transfers.agreement.signoff import agreement_sha256
from transfers.crypto import DECRYPTION_KEY_VAR, load_signing_key, own_decryption_key
from transfers.csv_escape import unescape_value
from transfers.errors import DeliveryRejected, SecretMissing
from transfers.receive.verify import delivery_base, open_delivery, pending_bases

pytestmark = pytest.mark.integration

FLOW, ME = "mash-referrals.A", "south-yorkshire-police"


@pytest.fixture
def sealed(world, gpg_partner, gpg_sender):
    """Flow A sealed for its recipient by the sender's own steps; the recipient's keys as it loads them."""
    world.settings = world.settings.model_copy(update={"delivery_max_rows": 15})  # 40 rows: three parts
    run, _ledger, _target = world.packaged(FLOW, ME)
    recipient = run.recipient(ME)
    secrets = {DECRYPTION_KEY_VAR: gpg_partner.home.export_secret(gpg_partner.fingerprint)}

    def secret(name: str) -> str:
        if name not in secrets:
            raise SecretMissing(f"secret {name!r} is not set")
        return secrets[name]

    own = own_decryption_key(secret, ME, recipient.pgp_fingerprint)
    sender = load_signing_key(gpg_sender.public_key_path, gpg_sender.fingerprint)
    return run, run.outbox_dir(recipient), own, sender


def _open(ref, inbox, own, sender, day=LOGICAL_DATE, base=None):
    return open_delivery(inbox, base or delivery_base(ref, day), ref=ref, me=ME, logical_date=day, own_key=own,
                         sender_key=sender, agreement_sha256=agreement_sha256(ref.path))


def test_the_rows_read_from_a_real_delivery_equal_gpg_decrypt_of_the_same_files(sealed, gpg_partner):
    run, inbox, own, sender = sealed

    delivery = _open(run.ref, inbox, own, sender)
    parts = list(delivery.parts())

    assert pending_bases(inbox, "mash-referrals", "A") == [run.base_name]
    assert [f.name for f in delivery.files] == sorted(p.name for p in inbox.glob("*.pgp"))
    assert [f.rows for f in delivery.files] == [15, 15, 10]
    expected = []
    for entry in delivery.files:
        frame = read_delivery(gpg_partner, inbox / entry.name)
        assert list(frame.columns) == delivery.fields
        expected.append([{k: (unescape_value(v) if v != "" else None) for k, v in row.items()}
                         for row in frame.to_dict("records")])
    assert parts == expected
    assert sum(len(p) for p in parts) == delivery.rows == delivery.manifest["rows"] > 0
    assert delivery.sender == run.ref.flow.from_ and delivery.destroy_by.isoformat() == \
        delivery.manifest["retention"]["destroy_by"]


def test_a_real_delivery_replayed_under_the_next_date_is_rejected(sealed, tmp_path):
    run, outbox, own, sender = sealed
    new_day = LOGICAL_DATE + timedelta(days=1)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    old, new = run.base_name, delivery_base(run.ref, new_day)
    for path in outbox.iterdir():  # an attacker with write access renames yesterday's signed files
        if path.name.startswith(old):
            shutil.copy(path, inbox / path.name.replace(old, new))

    with pytest.raises(DeliveryRejected, match=f"logical_date is '{LOGICAL_DATE.isoformat()}', "
                                               f"expected '{new_day.isoformat()}'"):
        _open(run.ref, inbox, own, sender, day=new_day)


def test_a_real_delivery_with_a_changed_part_is_rejected(sealed):
    run, inbox, own, sender = sealed
    part = sorted(inbox.glob("*.pgp"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 1
    part.write_bytes(bytes(data))

    with pytest.raises(DeliveryRejected, match=f"{part.name}: SHA-256 differs from the manifest's"):
        _open(run.ref, inbox, own, sender)


def test_a_real_delivery_is_rejected_by_a_recipient_holding_another_agreement_version(sealed, world):
    run, inbox, own, sender = sealed
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["version"] = "1.2"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ours = load_config(world.settings.config_dir).flow(FLOW)

    with pytest.raises(DeliveryRejected) as caught:
        _open(ours, inbox, own, sender)

    assert f"manifest is for agreement mash-referrals version {run.ref.agreement.version}" in caught.value.reason
    assert "we hold mash-referrals version 1.2" in caught.value.reason
