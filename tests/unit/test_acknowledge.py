"""The sender's receipt check (``transfers.acknowledge``) over an in-memory SFTP server, with keys made by gpg."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.support.pgp_keys import recipient_and_stranger
from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.acknowledge import collect_receipt, describe_left
from transfers.agreement import load_config
from transfers.agreement.signoff import agreement_sha256
from transfers.crypto import load_own_signing_key, sign_detached
from transfers.errors import (
    KeyRefused,
    ReceiptInvalid,
    ReceiptOverdue,
    ReceiptPending,
    ReceiptRejected,
    StateError,
)
from transfers.ledger import Ledger
from transfers.ledger.records import Acknowledgement, Disclosure, ReceiptRefused, RemoteFile
from transfers.pipeline import FlowRun, Resolvers
from transfers.receipt import Receipt, ReceiptFile, delivery_id
from transfers.reports.receipts import receipt_statuses
from transfers.settings import PROJECT_ROOT, Settings
from transfers.staging import new_staging_key

# The keys are made by the real gpg.
pytestmark = pytest.mark.integration

DAY = date(2026, 5, 1)
DELIVERED_AT = datetime(2026, 5, 2, 2, 0, tzinfo=UTC)
PART = b"encrypted part bytes"
MANIFEST = b'{"format": 2}'


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Any]:
    return recipient_and_stranger(tmp_path_factory.mktemp("ack-keys"))


@pytest.fixture
def world(tmp_path, keys):
    """Flow A delivered to its recipient on DAY: a disclosure in the ledger, a fake SFTP home, the pinned key."""
    config = load_config(PROJECT_ROOT / "config")
    ref = config.flow("mash-referrals.A")
    recipient = ref.flow.to[0]
    fpr, public, _secret = keys["recipient"]
    protocol = config.protocol.model_copy(update={"signatories": [
        s.model_copy(update={"signing_fingerprint": fpr}) if s.id == recipient.partner else s
        for s in config.protocol.signatories]})
    config = dataclasses.replace(config, protocol=protocol)
    (tmp_path / "keys").mkdir()
    shutil.copy(public, tmp_path / "keys" / f"{recipient.partner}.asc")
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", keys_dir=tmp_path / "keys")
    run = FlowRun(settings, config, config.flow("mash-referrals.A"), DAY, staging_key=new_staging_key(), today=DAY)
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    base = run.base_name
    ledger.record(Disclosure(
        agreement=ref.agreement.id, flow=ref.key, logical_date=DAY, recipient=recipient.partner, rows=40,
        remote_dir="inbound", at=DELIVERED_AT,
        files=(RemoteFile(f"inbound/{base}.csv.pgp", len(PART), _sha(PART), "delivered"),
               RemoteFile(f"inbound/{base}.manifest.json.asc", 100, _sha(b"sig"), "delivered"),
               RemoteFile(f"inbound/{base}.manifest.json", len(MANIFEST), _sha(MANIFEST), "delivered"))))
    sftp = FakeSftp()
    yield World(run, ledger, recipient, sftp, keys)
    ledger.close()


@dataclasses.dataclass
class World:
    run: FlowRun
    ledger: Ledger
    recipient: Any
    sftp: FakeSftp
    keys: dict[str, Any]

    def receipt(self, **changes: Any) -> Receipt:
        run = self.run
        agreement = run.ref.agreement
        fields: dict[str, Any] = {
            "delivery_id": delivery_id(agreement.id, run.ref.flow.id, run.ds, self.recipient.partner),
            "agreement": {"id": agreement.id, "version": agreement.version, "sha256": agreement_sha256(run.ref.path)},
            "flow": run.ref.flow.id, "logical_date": run.ds, "sender": run.ref.flow.from_,
            "recipient": self.recipient.partner, "manifest_sha256": _sha(MANIFEST),
            "files": (ReceiptFile(f"{run.base_name}.csv.pgp", len(PART), _sha(PART)),), "rows": 40,
            "status": "accepted", "reason": "", "received_at": "2026-05-02T03:00:00+00:00",
            "destroy_by": "2026-11-01", "recipient_ledger_head": {"seq": 9, "hash": "ab" * 32},
            "signer_fingerprint": self.keys["recipient"][0],
        }
        fields.update(changes)
        return Receipt(**fields)

    def put(self, receipt: Receipt | bytes | None, *, signer: str = "recipient", signature: bool = True) -> bytes:
        """Write the receipt (and its signature, made with ``signer``'s key) where the recipient would."""
        data = receipt.to_bytes() if isinstance(receipt, Receipt) else receipt
        where = f"inbound/receipts/{self.run.base_name}.receipt.json"
        fpr, _public, secret = self.keys[signer]
        if signature:
            self.sftp.files[where + ".asc"] = sign_detached(data or b"", load_own_signing_key(secret, fpr)).encode()
        if data is not None:
            self.sftp.files[where] = data
        self.sftp.dirs.update({"inbound", "inbound/receipts"})
        return data or b""

    def collect(self, now: datetime | None = None) -> Any:
        return collect_receipt(self.run, _no_resolvers(), self.ledger, self.recipient,
                               now=now or DELIVERED_AT + timedelta(hours=1), session=fake_session(self.sftp))

    def recorded(self, cls: type) -> list[Any]:
        return list(self.ledger.records(cls))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _no_resolvers() -> Resolvers:
    def nothing(name: str) -> Any:  # the session is given: no connection is resolved
        raise AssertionError(name)

    return Resolvers(nothing, nothing)


def test_a_signed_receipt_for_what_was_sent_is_recorded_as_acknowledged_with_its_hash(world):
    data = world.put(world.receipt())

    result = world.collect()

    assert result == {"status": "acknowledged", "delivery_id": world.receipt().delivery_id,
                      "receipt_sha256": _sha(data), "rows": 40}
    [ack] = world.recorded(Acknowledgement)
    assert (ack.status, ack.receipt_sha256, ack.manifest_sha256, ack.rows) == ("acknowledged", _sha(data),
                                                                               _sha(MANIFEST), 40)
    assert ack.signer_fingerprint == world.keys["recipient"][0]
    assert ack.recipient_ledger_head == {"seq": 9, "hash": "ab" * 32}
    assert ack.flow == "mash-referrals.A" and ack.recipient == world.recipient.partner
    assert world.recorded(ReceiptRefused) == []


def test_an_acknowledgement_is_recorded_once_and_answered_again_without_connecting(world):
    world.put(world.receipt())
    first = world.collect()
    world.sftp.calls.clear()

    again = world.collect()

    assert again == first
    assert world.sftp.calls == []
    assert len(world.recorded(Acknowledgement)) == 1


def test_a_rejection_is_recorded_then_raised_with_the_recipient_s_reason_every_time(world):
    world.put(world.receipt(status="rejected", reason="column referral_id missing", rows=0, files=()))

    with pytest.raises(ReceiptRejected, match="column referral_id missing"):
        world.collect()
    [ack] = world.recorded(Acknowledgement)
    assert (ack.status, ack.reason, ack.rows) == ("rejected", "column referral_id missing", 0)
    with pytest.raises(ReceiptRejected, match="column referral_id missing"):  # a rerun stays failed
        world.collect()
    assert len(world.recorded(Acknowledgement)) == 1


def test_a_rejection_may_name_other_files_and_another_agreement_version(world):
    world.put(world.receipt(status="rejected", reason="sha256 differs", rows=0,
                            files=(ReceiptFile(f"{world.run.base_name}.csv.pgp", 3, "00" * 32),),
                            agreement={"id": world.run.ref.agreement.id, "version": "9.9", "sha256": "ff" * 32}))

    with pytest.raises(ReceiptRejected, match="sha256 differs"):
        world.collect()


def test_a_receipt_signed_by_a_third_key_is_refused_and_never_counts(world):
    data = world.put(world.receipt(), signer="stranger")

    with pytest.raises(ReceiptInvalid, match="does not verify against .* pinned signing key"):
        world.collect()

    assert world.recorded(Acknowledgement) == []
    [refused] = world.recorded(ReceiptRefused)
    assert refused.receipt_sha256 == _sha(data)
    assert refused.delivery_id == world.receipt().delivery_id
    # The same bad receipt seen again is not recorded twice.
    with pytest.raises(ReceiptInvalid):
        world.collect()
    assert len(world.recorded(ReceiptRefused)) == 1


def test_a_receipt_changed_after_signing_is_refused(world):
    world.put(world.receipt())
    where = f"inbound/receipts/{world.run.base_name}.receipt.json"
    world.sftp.files[where] = world.sftp.files[where].replace(b'"rows": 40', b'"rows": 41')

    with pytest.raises(ReceiptInvalid, match="does not verify"):
        world.collect()
    assert world.recorded(Acknowledgement) == []


def test_a_receipt_without_its_signature_is_refused(world):
    world.put(world.receipt(), signature=False)

    with pytest.raises(ReceiptInvalid, match="no detached signature"):
        world.collect()
    assert len(world.recorded(ReceiptRefused)) == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"manifest_sha256": "00" * 32}, "manifest_sha256"),
    ({"delivery_id": "mash-referrals:A:2026-04-30:x"}, "delivery_id"),
    ({"logical_date": "2026-04-30"}, "logical_date"),
    ({"flow": "B"}, "flow"),
    ({"sender": "someone-else"}, "sender"),
    ({"recipient": "someone-else"}, "recipient"),
    ({"rows": 39}, "rows 39 loaded, 40 sent"),
    ({"files": (ReceiptFile("other.csv.pgp", 1, "00" * 32),)}, "files differ"),
    ({"files": ()}, "files differ"),
    ({"agreement": {"id": "mash-referrals", "version": "0.1", "sha256": "00" * 32}}, "agreement.version"),
    ({"signer_fingerprint": "A" * 40}, "signer_fingerprint"),
])
def test_an_acceptance_that_does_not_match_the_delivery_is_refused(world, change, message):
    data = world.put(world.receipt(**change))

    with pytest.raises(ReceiptInvalid, match=message):
        world.collect()
    assert world.recorded(Acknowledgement) == []
    assert [r.receipt_sha256 for r in world.recorded(ReceiptRefused)] == [_sha(data)]


def test_a_receipt_that_is_not_a_receipt_is_refused(world):
    world.put(b"not json")

    with pytest.raises(ReceiptInvalid, match="not a JSON receipt"):
        world.collect()
    assert len(world.recorded(ReceiptRefused)) == 1


def test_the_manifest_in_the_outbox_is_the_one_compared_while_it_is_there(world):
    outbox = world.run.outbox_dir(world.recipient)
    outbox.mkdir(parents=True)
    other = b'{"format": 2, "other": true}'
    (outbox / f"{world.run.base_name}.manifest.json").write_bytes(other)
    world.put(world.receipt())  # names the manifest the disclosure recorded, not the outbox's

    with pytest.raises(ReceiptInvalid, match="manifest_sha256"):
        world.collect()


def test_no_receipt_is_pending_with_the_time_left_then_overdue(world):
    with pytest.raises(ReceiptPending, match="9h 0m left of PT12H"):
        world.collect(now=DELIVERED_AT + timedelta(hours=3))
    with pytest.raises(ReceiptOverdue, match="within PT12H"):
        world.collect(now=DELIVERED_AT + timedelta(hours=12, minutes=1))
    assert world.recorded(Acknowledgement) == [] and world.recorded(ReceiptRefused) == []


def test_a_signature_without_its_receipt_is_not_yet_a_receipt(world):
    world.put(None)  # the recipient wrote the signature, not yet the receipt

    with pytest.raises(ReceiptPending):
        world.collect()
    assert world.recorded(ReceiptRefused) == []


def test_nothing_delivered_is_a_state_error(world):
    other = world.run.ref.flow.to[0].model_copy(update={"partner": "nobody"})

    with pytest.raises(StateError, match="deliver step first"):
        collect_receipt(world.run, _no_resolvers(), world.ledger, other, session=fake_session(world.sftp))


def test_a_recipient_without_a_pinned_signing_key_cannot_acknowledge(world):
    world.put(world.receipt())
    protocol = world.run.config.protocol
    unpinned = protocol.model_copy(update={"signatories": [
        s.model_copy(update={"signing_fingerprint": None}) if s.id == world.recipient.partner else s
        for s in protocol.signatories]})
    world.run.config = dataclasses.replace(world.run.config, protocol=unpinned)

    with pytest.raises(KeyRefused, match="no signing_fingerprint"):
        world.collect()
    assert world.recorded(Acknowledgement) == []


def test_receipt_states_say_where_each_disclosure_stands(world):
    config = world.run.config
    now = DELIVERED_AT + timedelta(hours=2)
    [state] = receipt_statuses(world.ledger, config, now=now)
    assert (state.recipient, state.status, state.detail(now), state.refused_receipts) == (
        world.recipient.partner, "pending", "10h 0m left", 0)
    [state] = receipt_statuses(world.ledger, config, now=DELIVERED_AT + timedelta(days=2))
    assert state.status == "overdue"

    world.put(world.receipt(), signer="stranger")
    with pytest.raises(ReceiptInvalid):
        world.collect()
    world.put(world.receipt())
    world.collect()
    [state] = receipt_statuses(world.ledger, config, flow="mash-referrals.A")
    assert (state.status, state.detail(), state.refused_receipts) == ("acknowledged", "40 rows loaded", 1)
    assert receipt_statuses(world.ledger, config, flow="mash-referrals.B") == []


@pytest.mark.parametrize(("left", "shown"), [(timedelta(minutes=4, seconds=59), "4m"),
                                             (timedelta(hours=3, minutes=12), "3h 12m"),
                                             (timedelta(days=1, hours=3), "1d 3h"), (timedelta(seconds=-5), "0m")])
def test_describe_left(left, shown):
    assert describe_left(left) == shown
