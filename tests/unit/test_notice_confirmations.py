"""The sender's confirmation check (``transfers.notice_confirmations``) over an in-memory SFTP server, keys by gpg."""

from __future__ import annotations

import dataclasses
import shutil
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.pgp_keys import recipient_and_stranger
from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.agreement import load_config
from transfers.confirmation import Confirmation, confirmation_name
from transfers.crypto import load_own_signing_key, sign_detached
from transfers.ledger import Ledger
from transfers.ledger.records import Notice, NoticeConfirmationRefused, NoticeConfirmed, RemoteFile
from transfers.notice_confirmations import collect_confirmations, confirmation_statuses, describe
from transfers.settings import PROJECT_ROOT, Settings

# The keys are made by the real gpg.
pytestmark = pytest.mark.integration

TAG = "0123456789ab"
WHERE = f"inbound/mash/receipts/{confirmation_name('mash-referrals', 'A', 'withdrawal', TAG)}"


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Any]:
    return recipient_and_stranger(tmp_path_factory.mktemp("confirm-keys"))


@dataclasses.dataclass
class World:
    settings: Settings
    config: Any
    ledger: Ledger
    sftp: FakeSftp
    keys: dict[str, Any]
    partner: str
    sender: str

    def put(self, *, signer: str = "recipient", **changes: Any) -> None:
        fields = {"reference": TAG, "notice": "withdrawal", "agreement": "mash-referrals", "flow": "A",
                  "sender": self.sender, "recipient": self.partner, "rows": 3, "tables": ("received_mash_referrals_a",),
                  "applied_at": "2026-11-27T09:00:00+00:00", "recipient_ledger_head": {"seq": 4, "hash": "ab" * 32},
                  "signer_fingerprint": self.keys["recipient"][0]}
        data = Confirmation(**{**fields, **changes}).to_bytes()
        fpr, _public, secret = self.keys[signer]
        self.sftp.files[WHERE + ".asc"] = sign_detached(data, load_own_signing_key(secret, fpr)).encode()
        self.sftp.files[WHERE] = data
        self.sftp.dirs.update({"inbound", "inbound/mash", "inbound/mash/receipts"})

    def collect(self):
        def no_connection(name: str) -> Any:
            raise AssertionError(name)

        return collect_confirmations(self.settings, self.config, self.ledger, no_connection,
                                     session=fake_session(self.sftp))


@pytest.fixture
def world(tmp_path, keys):
    config = load_config(PROJECT_ROOT / "config")
    ref = config.flow("mash-referrals.A")
    partner = ref.flow.to[0].partner
    protocol = config.protocol.model_copy(update={"signatories": [
        s.model_copy(update={"signing_fingerprint": keys["recipient"][0]}) if s.id == partner else s
        for s in config.protocol.signatories]})
    config = dataclasses.replace(config, protocol=protocol)
    (tmp_path / "keys").mkdir()
    shutil.copy(keys["recipient"][1], tmp_path / "keys" / f"{partner}.asc")
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", keys_dir=tmp_path / "keys")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record(Notice(agreement="mash-referrals", flow=ref.key, recipient=partner, notice="withdrawal",
                         lookup="d" * 64, occasion="withdrawn", pseudonyms=("p1",), reference=TAG,
                         file=RemoteFile(f"inbound/mash/mash-referrals_A_withdrawal-notice_{TAG}.json.pgp", 10, "ab",
                                         "delivered"), at=datetime(2026, 11, 26, tzinfo=UTC)))
    yield World(settings, config, ledger, FakeSftp(), keys, partner, ref.flow.from_)
    ledger.close()


def test_a_signed_confirmation_of_the_notice_is_recorded_once(world):
    world.put()

    [status] = world.collect()
    world.collect()

    assert status.status == "confirmed" and status.rows == 3
    assert describe(status).startswith("confirmed: 3 rows deleted ")
    [confirmed] = list(world.ledger.records(NoticeConfirmed))
    assert (confirmed.reference, confirmed.recipient, confirmed.signer_fingerprint) == (
        TAG, world.partner, world.keys["recipient"][0])


def test_no_confirmation_yet_is_unconfirmed(world):
    [status] = world.collect()
    assert (status.status, describe(status)) == ("unconfirmed", "unconfirmed")
    assert list(world.ledger.records(NoticeConfirmed)) == []


@pytest.mark.parametrize("change, reason", [
    ({"signer": "stranger"}, "does not verify against"),
    ({"rows": 3, "recipient": "someone-else"}, "recipient is 'someone-else'"),
    ({"notice": "correction"}, "notice is 'correction'"),
    ({"sender": "someone-else"}, "sender is 'someone-else'"),
    ({"signer_fingerprint": "6" * 40}, "signer_fingerprint"),
])
def test_a_confirmation_that_does_not_verify_or_names_another_notice_is_refused_and_never_counts(
        world, change, reason):
    world.put(**change)

    [status] = world.collect()

    assert status.status == "refused" and reason in status.reason
    assert list(world.ledger.records(NoticeConfirmed)) == []
    [refused] = list(world.ledger.records(NoticeConfirmationRefused))
    assert refused.reference == TAG and reason in refused.reason
    assert confirmation_statuses(world.ledger) == [status]


def test_a_confirmation_without_its_signature_is_refused(world):
    world.put()
    del world.sftp.files[WHERE + ".asc"]

    [status] = world.collect()

    assert status.status == "refused" and "no detached signature" in status.reason
