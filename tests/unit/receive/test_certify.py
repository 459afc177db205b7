"""The recipient issues one signed certificate per wholly destroyed delivery, returned or recorded for itself.

A real SQLite ledger and a signing key made by gpg at run time (every partner pinned to it by
``sign_off``); the ``Destroyed`` records are what the recipient's purge writes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from tests.support.config_edits import copy_config
from tests.support.signoff import sign_off
from transfers.agreement import load_config
from transfers.certificate import DestructionCertificate, certificate_name
from transfers.crypto import load_signing_key, verify_detached
from transfers.errors import SecretMissing
from transfers.flowrun import Resolvers
from transfers.ledger.records import CertificateIssued, Destroyed, DestructionCertified
from transfers.receipt import RECEIPTS_DIR, base_name, delivery_id
from transfers.receive.certify import issue_certificates
from transfers.settings import Settings

pytestmark = pytest.mark.integration  # gpg makes the key

DAY = date(2026, 11, 25)
AT = datetime(2026, 12, 25, 4, 0, tzinfo=UTC)


@pytest.fixture
def party(tmp_path, gpg_home):
    config_dir = copy_config(tmp_path)
    keys = tmp_path / "keys"
    fpr = sign_off(config_dir, keys, gpg_home)
    secret = gpg_home.export_secret(fpr)

    def make(me: str) -> tuple[Settings, Resolvers]:
        settings = Settings(home=tmp_path / me, config_dir=config_dir, keys_dir=keys, party=me,
                            inbox_dir=tmp_path / me / "sftp-root")

        def secret_of(name: str) -> str:
            from transfers.errors import SecretMissing

            if name != "transfers_signing_key":
                raise SecretMissing(f"secret {name!r} is not set")
            return secret

        return settings, Resolvers(lambda conn_id: (_ for _ in ()).throw(AssertionError(conn_id)), secret_of)

    return make, fpr


def _destroyed(ledger, flow: str, me: str, sender: str, complete: bool = True) -> str:
    did = delivery_id("mash-referrals", flow, DAY.isoformat(), me)
    ledger.record(Destroyed(agreement="mash-referrals", flow=f"mash-referrals.{flow}", logical_date=DAY, recipient=me,
                            place="received", delivery_id=did, sender=sender,
                            controller="rotherham-childrens-services", rows=40, complete=complete,
                            destroy_by=DAY.isoformat(), rule="controller rotherham-childrens-services P6Y (manifest)",
                            manifest_sha256="ab" * 32, destroyed_at=AT, at=AT))
    return did


def test_a_certificate_is_signed_into_the_inbox_for_the_controller_once(party):
    make, fpr = party
    settings, resolvers = make("south-yorkshire-police")
    config = load_config(settings.config_dir)
    with settings.open_ledger() as ledger:
        did = _destroyed(ledger, "A", "south-yorkshire-police", "rotherham-childrens-services")
        _destroyed(ledger, "A", "south-yorkshire-police", "x", complete=False)  # a subject hold kept some rows
        [issued] = issue_certificates(settings, config, ledger, resolvers, me="south-yorkshire-police")
        assert (issued.delivery_id, issued.sent_to, issued.error) == (did, "inbox", "")
        assert issue_certificates(settings, config, ledger, resolvers, me="south-yorkshire-police") == []
        [record] = ledger.records(CertificateIssued)
    folder = settings.inbox / config.flow("mash-referrals.A").flow.to[0].path / RECEIPTS_DIR
    path = folder / certificate_name(base_name("mash-referrals", "A", DAY.isoformat()))
    data = path.read_bytes()
    certificate = DestructionCertificate.parse(data, where=str(path))
    assert (certificate.delivery_id, certificate.rows_destroyed, certificate.controller) == (
        did, 40, "rotherham-childrens-services")
    assert record.certificate_sha256 == issued.certificate_sha256
    key = load_signing_key(settings.keys / "south-yorkshire-police.asc", fpr)
    assert verify_detached(data, (path.parent / (path.name + ".asc")).read_text(), key) is not None


def test_the_controller_receiving_its_own_data_records_the_certificate_itself(party):
    make, _fpr = party
    settings, resolvers = make("rotherham-childrens-services")  # flow B's recipient is the agreement's controller
    config = load_config(settings.config_dir)
    with settings.open_ledger() as ledger:
        did = _destroyed(ledger, "B", "rotherham-childrens-services", "rotherham-nhs-ft")
        [issued] = issue_certificates(settings, config, ledger, resolvers, me="rotherham-childrens-services")
        assert issued.sent_to == "self"
        [certified] = ledger.records(DestructionCertified)
    assert (certified.delivery_id, certified.rows) == (did, 40)
    assert not (settings.inbox).exists()  # nothing travels


def test_without_our_signing_key_nothing_is_issued(party):
    make, _fpr = party
    settings, _resolvers = make("south-yorkshire-police")

    def no_secret(name: str) -> str:
        raise SecretMissing(f"secret {name!r} is not set")

    config = load_config(settings.config_dir)
    with settings.open_ledger() as ledger:
        _destroyed(ledger, "A", "south-yorkshire-police", "rotherham-childrens-services")
        with pytest.raises(SecretMissing, match="transfers_signing_key"):
            issue_certificates(settings, config, ledger, Resolvers(lambda c: None, no_secret),  # type: ignore
                               me="south-yorkshire-police")
        assert list(ledger.records(CertificateIssued)) == []
