"""The controller collects recipients' destruction certificates (``transfers.destruction``) over an in-memory SFTP
server, with keys made by gpg and a controlled clock."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from datetime import UTC, date, datetime
from typing import Any

import pytest

from tests.support.pgp_keys import recipient_and_stranger
from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.agreement import load_config
from transfers.agreement.signoff import agreement_sha256
from transfers.certificate import DestructionCertificate
from transfers.crypto import load_own_signing_key, sign_detached
from transfers.destruction import collect_certificates, record_own_certificate
from transfers.errors import StateError
from transfers.ledger import Ledger
from transfers.ledger.records import CertificateRefused, DestructionCertified, Disclosure, RemoteFile
from transfers.receipt import delivery_id
from transfers.settings import PROJECT_ROOT, Settings

# The keys are made by the real gpg.
pytestmark = pytest.mark.integration

DAY = date(2026, 5, 1)
DESTROY_BY = date(2032, 5, 1)  # the sample agreement's P6Y after DAY
DELIVERED_AT = datetime(2026, 5, 2, 2, 0, tzinfo=UTC)
AFTER = datetime(2032, 5, 2, 9, 0, tzinfo=UTC)
MANIFEST = b'{"format": 2}'
SYP, CS = "south-yorkshire-police", "rotherham-childrens-services"
BASE = "mash-referrals_A_2026-05-01"
WHERE = f"inbound/receipts/{BASE}.destruction.json"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Any]:
    """Valid past destroy-by: a key is checked as at the moment its certificate is collected."""
    return recipient_and_stranger(tmp_path_factory.mktemp("cert-keys"), expire="10y")


@dataclasses.dataclass
class World:
    settings: Settings
    config: Any
    ledger: Ledger
    sftp: FakeSftp
    keys: dict[str, Any]

    def certificate(self, **changes: Any) -> DestructionCertificate:
        ref = self.config.flow("mash-referrals.A")
        fields: dict[str, Any] = {
            "delivery_id": delivery_id("mash-referrals", "A", DAY.isoformat(), SYP),
            "agreement": {"id": "mash-referrals", "version": ref.agreement.version,
                          "sha256": agreement_sha256(ref.path)},
            "flow": "A", "logical_date": DAY.isoformat(), "sender": CS, "recipient": SYP, "controller": CS,
            "manifest_sha256": _sha(MANIFEST), "rows_destroyed": 40, "destroyed_at": "2032-05-01T03:00:00+00:00",
            "rule": "controller rotherham-childrens-services P6Y: destroy_by 2032-05-01 (manifest)",
            "recipient_ledger_head": {"seq": 12, "hash": "ab" * 32}, "signer_fingerprint": self.keys["recipient"][0]}
        fields.update(changes)
        return DestructionCertificate(**fields)

    def put(self, certificate: DestructionCertificate | bytes, *, signer: str = "recipient",
            signature: bool = True) -> bytes:
        data = certificate.to_bytes() if isinstance(certificate, DestructionCertificate) else certificate
        fpr, _public, secret = self.keys[signer]
        if signature:
            self.sftp.files[WHERE + ".asc"] = sign_detached(data, load_own_signing_key(secret, fpr)).encode()
        self.sftp.files[WHERE] = data
        self.sftp.dirs.update({"inbound", "inbound/receipts"})
        return data

    def collect(self, now: datetime = AFTER) -> list[Any]:
        def nothing(name: str) -> Any:  # the session is given: no connection is resolved
            raise AssertionError(name)

        return collect_certificates(self.settings, self.config, self.ledger, nothing, now=now,
                                    session=fake_session(self.sftp))

    def recorded(self, cls: type) -> list[Any]:
        return list(self.ledger.records(cls))


@pytest.fixture
def world(tmp_path, keys):
    """Flow A (controller: its sender) disclosed to the police on DAY; their signing key pinned."""
    config = load_config(PROJECT_ROOT / "config", today=DAY)
    fpr, public, _secret = keys["recipient"]
    protocol = config.protocol.model_copy(update={"signatories": [
        s.model_copy(update={"signing_fingerprint": fpr}) if s.id == SYP else s
        for s in config.protocol.signatories]})
    config = dataclasses.replace(config, protocol=protocol)
    (tmp_path / "keys").mkdir()
    shutil.copy(public, tmp_path / "keys" / f"{SYP}.asc")
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", keys_dir=tmp_path / "keys")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record(Disclosure(
        agreement="mash-referrals", flow="mash-referrals.A", logical_date=DAY, recipient=SYP, sender=CS, rows=40,
        remote_dir="inbound", at=DELIVERED_AT,
        files=(RemoteFile(f"inbound/{BASE}.csv.pgp", 10, _sha(b"part"), "delivered"),
               RemoteFile(f"inbound/{BASE}.manifest.json", len(MANIFEST), _sha(MANIFEST), "delivered"))))
    yield World(settings, config, ledger, FakeSftp(), keys)
    ledger.close()


def test_before_destroy_by_nothing_is_read(world):
    world.put(world.certificate())

    assert world.collect(now=datetime(2032, 4, 30, 23, 59, tzinfo=UTC)) == []
    assert world.sftp.calls == [] and world.recorded(DestructionCertified) == []


def test_a_signed_certificate_for_the_disclosure_is_recorded_once_with_its_hash(world):
    data = world.put(world.certificate())

    [result] = world.collect()

    assert (result.status, result.certificate_sha256) == ("certified", _sha(data))
    [certified] = world.recorded(DestructionCertified)
    assert (certified.certificate_sha256, certified.rows, certified.recipient) == (_sha(data), 40, SYP)
    assert certified.signer_fingerprint == world.keys["recipient"][0]
    assert certified.destroyed_at == "2032-05-01T03:00:00+00:00" and "P6Y" in certified.rule
    assert certified.recipient_ledger_head == {"seq": 12, "hash": "ab" * 32}
    assert result.ledger_seq == certified.seq
    world.sftp.calls.clear()
    assert world.collect() == [] and world.sftp.calls == []  # recorded: not read again


def test_no_certificate_yet_is_missing_and_nothing_is_recorded(world):
    [result] = world.collect()

    assert result.status == "missing" and f"{BASE}.destruction.json" in result.detail
    assert world.recorded(DestructionCertified) == world.recorded(CertificateRefused) == []


def test_a_certificate_signed_by_another_key_is_refused_once_and_never_counts(world):
    data = world.put(world.certificate(), signer="stranger")

    [result] = world.collect()

    assert result.status == "refused" and "does not verify against" in result.detail
    [refused] = world.recorded(CertificateRefused)
    assert refused.certificate_sha256 == _sha(data) and world.recorded(DestructionCertified) == []
    world.collect()
    assert len(world.recorded(CertificateRefused)) == 1


def test_a_certificate_without_its_signature_is_refused(world):
    world.put(world.certificate(), signature=False)

    [result] = world.collect()

    assert result.status == "refused" and "no detached signature" in result.detail


@pytest.mark.parametrize(("changes", "message"), [
    ({"rows_destroyed": 39}, "rows_destroyed 39, 40 disclosed"),
    ({"manifest_sha256": "0" * 64}, "manifest_sha256"),
    ({"delivery_id": "mash-referrals:A:2026-05-02:south-yorkshire-police"}, "delivery_id"),
    ({"controller": SYP}, "controller"),
    ({"signer_fingerprint": "0" * 40}, "signer_fingerprint"),
])
def test_a_signed_certificate_naming_something_else_is_refused(world, changes, message):
    world.put(world.certificate(**changes))

    [result] = world.collect()

    assert result.status == "refused" and message in result.detail
    assert world.recorded(DestructionCertified) == [] and len(world.recorded(CertificateRefused)) == 1


def test_an_unreadable_certificate_is_refused(world):
    world.put(b"not json")

    [result] = world.collect()

    assert result.status == "refused" and "not a JSON destruction certificate" in result.detail


def test_a_recipient_whose_key_is_not_pinned_is_an_error_and_nothing_is_recorded(world):
    world.config = dataclasses.replace(world.config, protocol=world.config.protocol.model_copy(update={
        "signatories": [s.model_copy(update={"signing_fingerprint": None}) if s.id == SYP else s
                        for s in world.config.protocol.signatories]}))
    world.put(world.certificate())

    [result] = world.collect()

    assert result.status == "error" and "no signing_fingerprint" in result.detail
    assert world.recorded(DestructionCertified) == world.recorded(CertificateRefused) == []


def test_a_controller_that_is_the_recipient_records_its_own_certificate(world):
    b_day = date(2026, 6, 1)
    own = world.certificate(delivery_id=delivery_id("mash-referrals", "B", b_day.isoformat(), CS), flow="B",
                            logical_date=b_day.isoformat(), sender="rotherham-nhs-ft", recipient=CS,
                            signer_fingerprint="C" * 40)

    recorded = record_own_certificate(world.config, world.ledger, own, "ef" * 32)

    assert (recorded.flow, recorded.recipient, recorded.certificate_sha256) == ("mash-referrals.B", CS, "ef" * 32)
    assert recorded.logical_date == b_day and recorded.rows == 40
    assert record_own_certificate(world.config, world.ledger, own, "ef" * 32).seq == recorded.seq  # once
    with pytest.raises(StateError, match="only a recipient that is the controller"):
        record_own_certificate(world.config, world.ledger, world.certificate(), "ef" * 32)
