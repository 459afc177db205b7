"""Flow A with the police polling a remote SFTP mailbox (pinned host key) instead of a local inbox.

The same two parties as ``test_exchange`` (own homes, ledgers, keys; real sshd, PostgreSQL and gpg),
but the police's ``TRANSFERS_MAILBOX`` names the sshd the sender delivers to: they fetch over SFTP,
return the receipt there, and take the delivery off it.
"""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa

from tests.integration.conftest import LOGICAL_DATE, sftp_conn
from tests.integration.exchange_world import SENDER, Exchange, mailbox_exchange, police_keys, police_sshd
from transfers.errors import DeliveryPending, DeliveryRejected, DeliveryUnavailable, HostKeyMismatch, ReceiptRejected
from transfers.ledger.records import Acknowledgement, Incident, Received
from transfers.receipt import RECEIPTS_DIR, Receipt, receipt_name

__all__ = ["mailbox_exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

BASE = f"mash-referrals_A_{LOGICAL_DATE.isoformat()}"


def _rows(ex: Exchange) -> int:
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t.startswith("received_mash")]
            return sum(conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables)
    finally:
        engine.dispose()


def _records(ex: Exchange) -> list[Received]:
    with ex.police.settings.open_ledger() as ledger:
        return list(ledger.records(Received))


def _on_mailbox(ex: Exchange) -> list[str]:
    return sorted(p.name for p in ex.inbox.glob(f"{BASE}*"))


def _receipt_on_mailbox(ex: Exchange) -> tuple[Receipt, bytes]:
    path = ex.inbox / RECEIPTS_DIR / receipt_name(BASE)
    data = path.read_bytes()
    return Receipt.parse(data, where=str(path)), data


def _nothing_left_locally(ex: Exchange) -> None:
    layout = ex.police.settings.layout
    assert not layout.mailbox_cache("mash-referrals", "A", LOGICAL_DATE).exists()
    assert not (ex.police.settings.home / "inbox").exists()  # no local inbox in this deployment


def test_a_delivery_on_the_mailbox_is_fetched_loaded_acknowledged_and_taken_off_it(mailbox_exchange, gpg_partner):
    ex = mailbox_exchange
    ex.send()
    sent = _on_mailbox(ex)
    assert any(n.endswith(".pgp") for n in sent) and f"{BASE}.manifest.json" in sent

    result = ex.police.receive()

    assert result["status"] == "accepted" and result["rows"] > 0 and not result["already"]
    assert _rows(ex) == result["rows"]
    [received] = _records(ex)
    assert (received.status, received.rows, received.sender) == ("accepted", result["rows"], SENDER)
    receipt, data = _receipt_on_mailbox(ex)
    assert receipt.accepted and hashlib.sha256(data).hexdigest() == received.receipt_sha256
    signature = ex.inbox / RECEIPTS_DIR / (receipt_name(BASE) + ".asc")
    status = gpg_partner.home.verify_detached(signature, ex.inbox / RECEIPTS_DIR / receipt_name(BASE))
    assert any(ex.keys.signing_fingerprint in line for line in status if "VALIDSIG" in line)
    assert _on_mailbox(ex) == []  # collected: the rows are in the store
    _nothing_left_locally(ex)
    # The sender reads the receipt from the mailbox over its own connection, as from any recipient's server.
    collected = ex.collect()
    assert collected["status"] == "acknowledged" and collected["receipt_sha256"] == received.receipt_sha256
    # Once received, a later look is the recorded outcome, with nothing on the mailbox to fetch.
    again = ex.police.receive()
    assert again["already"] and _rows(ex) == result["rows"] and len(_records(ex)) == 1


def test_a_part_changed_on_the_mailbox_is_quarantined_locally_and_answered_with_a_signed_rejection(
        mailbox_exchange):
    ex = mailbox_exchange
    ex.send()
    part = sorted(ex.inbox.glob(f"{BASE}*.pgp"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))

    with pytest.raises(DeliveryRejected) as caught:
        ex.police.receive()

    assert "SHA-256" in caught.value.reason and _rows(ex) == 0
    [received] = _records(ex)
    assert received.status == "rejected"
    quarantine = ex.police.settings.layout.quarantine_dir("mash-referrals", "A", LOGICAL_DATE, SENDER)
    held = sorted(p.name for p in quarantine.iterdir())
    assert "reason.json" in held and part.name in held
    assert (quarantine / part.name).read_bytes() == bytes(data)  # the copy as it was on the mailbox
    receipt, raw = _receipt_on_mailbox(ex)
    assert receipt.status == "rejected" and hashlib.sha256(raw).hexdigest() == received.receipt_sha256
    assert _on_mailbox(ex) == []
    _nothing_left_locally(ex)
    with pytest.raises(ReceiptRejected, match="SHA-256"):
        ex.collect()
    [ack] = ex.sender_records(Acknowledgement)
    assert ack.status == "rejected" and ack.receipt_sha256 == received.receipt_sha256


def test_nothing_on_the_mailbox_yet_is_pending(mailbox_exchange):
    with pytest.raises(DeliveryPending, match=r"mailbox sftp://.*inbound/mash: no complete delivery"):
        mailbox_exchange.police.receive()
    assert not _records(mailbox_exchange)
    _nothing_left_locally(mailbox_exchange)


def test_a_mailbox_with_another_host_key_is_refused_before_anything_is_read(mailbox_exchange, police_sshd):
    ex = mailbox_exchange
    ex.send()
    sent = {p.name: p.read_bytes() for p in ex.inbox.glob(f"{BASE}*")}
    ex.police.connections["syp_mailbox"] = sftp_conn("syp_mailbox", police_sshd,
                                                     host_key=police_sshd.other_host_key_line)

    with pytest.raises(HostKeyMismatch, match="is not the pinned"):
        ex.police.receive()

    assert {p.name: p.read_bytes() for p in ex.inbox.glob(f"{BASE}*")} == sent
    assert not (ex.inbox / RECEIPTS_DIR).exists()
    assert not _records(ex) and _rows(ex) == 0
    assert not (ex.police.settings.home / "inbox-cache").exists()
    # A security incident at the police, naming the mailbox and the key it offered.
    with ex.police.settings.open_ledger() as ledger:
        [incident] = list(ledger.records(Incident))
    assert (incident.what, incident.party) == ("host-key-mismatch", "south-yorkshire-police")
    assert incident.where == f"{police_sshd.host}:{police_sshd.port}" and incident.evidence.startswith("ssh-")


def test_a_receipt_upload_cut_short_and_a_crash_before_collecting_both_recover(mailbox_exchange, monkeypatch):
    from transfers.receive.mailbox import Mailbox

    ex = mailbox_exchange
    ex.send()
    real_return, real_collect = Mailbox.return_receipt, Mailbox.collect

    def cut(self, receipt):
        real_return(self, receipt)
        (ex.inbox / RECEIPTS_DIR / receipt_name(BASE)).unlink()  # only the signature made it
        raise DeliveryUnavailable("connection dropped")

    monkeypatch.setattr(Mailbox, "return_receipt", cut)
    with pytest.raises(DeliveryUnavailable):
        ex.police.receive()
    assert _rows(ex) > 0 and not _records(ex) and _on_mailbox(ex)  # loaded, nothing recorded, still there
    _nothing_left_locally(ex)

    monkeypatch.setattr(Mailbox, "return_receipt", real_return)
    monkeypatch.setattr(Mailbox, "collect", lambda self: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        ex.police.receive()
    [received] = _records(ex)
    receipt, raw = _receipt_on_mailbox(ex)
    assert receipt.accepted and hashlib.sha256(raw).hexdigest() == received.receipt_sha256
    assert _on_mailbox(ex)  # recorded, not yet collected

    monkeypatch.setattr(Mailbox, "collect", real_collect)
    again = ex.police.receive()
    assert again["already"] and _on_mailbox(ex) == [] and len(_records(ex)) == 1
    assert _rows(ex) == received.rows  # loaded once
    assert ex.collect()["status"] == "acknowledged"
    _nothing_left_locally(ex)
