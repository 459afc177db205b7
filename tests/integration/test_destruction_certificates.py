"""The controller holds evidence of destruction at the recipient (issue 12, items 2 and 3), end to end.

Flow A's controller is its sender, Children's Services. Both ends are real (``exchange_world``: own homes,
ledgers, keys, sshd, PostgreSQL, gpg): the sender delivers, the police receive and return a receipt, the
sender records it. The police's purge is another part's work, so the test plays the police after it: it
writes a certificate with ``write_certificate`` into their inbox's ``receipts/`` folder, signed with their
key. The clock is controlled: the agreement's retention is shortened to P30D (the police's signing key,
made for a year, must still verify when the certificate is collected).
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.exchange_world import RECIPIENT, SENDER, Exchange, exchange, police_keys, police_sshd
from tests.support.tables import table_rows
from transfers.certificate import DestructionCertificate, certificate_name, write_certificate
from transfers.crypto import load_own_signing_key
from transfers.destruction import collect_certificates
from transfers.ledger.records import CertificateRefused, DestructionCertified, Disclosure
from transfers.receipt import RECEIPTS_DIR, Receipt, base_name, receipt_name

__all__ = ["exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

BASE = base_name("mash-referrals", "A", LOGICAL_DATE.isoformat())
DESTROY_BY = LOGICAL_DATE + timedelta(days=30)
DUE = datetime.combine(DESTROY_BY, time.min, UTC)


@pytest.fixture
def received(exchange: Exchange) -> Exchange:
    """Flow A under a P30D controller period: sent, received and loaded by the police, their receipt recorded."""
    agreement = exchange.sender.settings.config_dir / "agreements" / "mash-referrals.yaml"
    text = agreement.read_text()
    assert text.count("period: P6Y") == 1
    agreement.write_text(text.replace("period: P6Y", "period: P30D"))
    exchange.sender.reload()
    exchange.send()
    assert exchange.police.receive()["status"] == "accepted"
    assert exchange.collect()["status"] == "acknowledged"
    return exchange


def _certificate(ex: Exchange, **changes) -> DestructionCertificate:
    """What the police certify after destroying the delivery: from the receipt they returned for it."""
    path = ex.inbox / RECEIPTS_DIR / receipt_name(BASE)
    receipt = Receipt.parse(path.read_bytes(), where=str(path))
    assert receipt.destroy_by == DESTROY_BY.isoformat()  # the manifest carried the controller's date
    fields = dict(delivery_id=receipt.delivery_id, agreement=receipt.agreement, flow="A",
                  logical_date=receipt.logical_date, sender=SENDER, recipient=RECIPIENT, controller=SENDER,
                  manifest_sha256=receipt.manifest_sha256, rows_destroyed=receipt.rows,
                  destroyed_at=(DUE + timedelta(hours=3)).isoformat(timespec="seconds"),
                  rule=f"controller {SENDER} P30D: destroy_by {DESTROY_BY} (manifest)",
                  recipient_ledger_head={"seq": 7, "hash": "ab" * 32}, signer_fingerprint=ex.keys.signing_fingerprint)
    fields.update(changes)
    return DestructionCertificate(**fields)  # type: ignore[arg-type]


def _destroyed_by_police(ex: Exchange, certificate: DestructionCertificate, secret: str | None = None,
                         fingerprint: str | None = None) -> str:
    signer = load_own_signing_key(secret or ex.keys.signing_secret, fingerprint or ex.keys.signing_fingerprint)
    return write_certificate(ex.inbox / RECEIPTS_DIR, certificate, signer)


def _collect(ex: Exchange, now: datetime):
    world = ex.sender
    with world.settings.open_ledger() as ledger:
        return collect_certificates(world.settings, world.config, ledger, world.resolvers().connection, now=now)


def _ig(cli, tmp_path, now: date) -> tuple[str, list[dict]]:
    out = tmp_path / f"ig-{now}"
    result = cli("report", "ig", "--from", LOGICAL_DATE.isoformat(), "--to", now.isoformat(), "--as-of",
                 now.isoformat(), "--out", str(out))
    assert result.exit_code == 0, result.output
    [html] = out.glob("*.html")
    [table] = out.glob("*_destruction.csv")
    with table.open() as fh:
        return html.read_text(), list(csv.DictReader(fh))


def test_a_signed_certificate_is_collected_after_destroy_by_and_shown_in_the_ig_report(received, cli, tmp_path):
    digest = _destroyed_by_police(received, _certificate(received))
    assert (received.inbox / RECEIPTS_DIR / certificate_name(BASE)).is_file()

    # Before destroy-by nothing is collected, even though a certificate is there.
    assert _collect(received, DUE - timedelta(minutes=1)) == []
    assert received.sender_records(DestructionCertified) == []

    [result] = _collect(received, DUE + timedelta(days=1))

    assert (result.status, result.certificate_sha256) == ("certified", digest)
    [certified] = received.sender_records(DestructionCertified)
    [disclosure] = received.sender_records(Disclosure)
    assert (certified.certificate_sha256, certified.rows, certified.recipient) == (digest, disclosure.rows, RECIPIENT)
    assert certified.signer_fingerprint == received.keys.signing_fingerprint
    html, rows = _ig(cli, tmp_path, DESTROY_BY + timedelta(days=40))
    section = html[html.index('<section id="destruction">'):html.index('<section id="without-consent">')]
    [row] = re.findall(r'<tr class="destruction destroyed">(.*?)</tr>', section, re.S)
    assert "destroyed at recipient" in row and digest in row
    assert re.search(r'id="total-destroyed-at-recipients">1<', html)
    assert re.search(r'id="total-destruction-overdue">0<', html)
    assert [(r["status"], r["certificate_sha256"]) for r in rows] == [("destroyed", digest)]
    verified = cli("ledger", "verify", "--as-of", (DESTROY_BY + timedelta(days=40)).isoformat())
    assert "destruction:" not in verified.output


def test_a_certificate_signed_by_another_key_is_refused_and_never_counts(received, gpg_sender, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    certificate = _certificate(received)
    # The sender's own key (not the police's pinned one) signs it: a certificate anyone else could have written.
    digest = _destroyed_by_police(received, certificate, gpg_sender.secret, gpg_sender.fingerprint)

    collected = cli("certificates", "--collect", "--as-of", (DESTROY_BY + timedelta(days=1)).isoformat())

    assert collected.exit_code == 1, collected.output
    assert "refused:" in collected.output and "does not verify against" in collected.output
    assert "collected: 0 certified, 1 refused" in collected.output
    assert received.sender_records(DestructionCertified) == []
    [refused] = received.sender_records(CertificateRefused)
    assert refused.delivery_id == certificate.delivery_id and refused.certificate_sha256 == digest
    # Listed as awaiting still (within the grace days), with the refused certificate counted.
    [row] = [r for r in table_rows(collected.output) if r["flow, date, partner"].startswith("mash-referrals.A")]
    assert row["destruction"].startswith("awaiting") and row["refused"] == "1"


def test_no_certificate_grace_days_after_destroy_by_is_overdue_in_the_report_and_a_ledger_gap(received, cli,
                                                                                             tmp_path):
    within = DESTROY_BY + timedelta(days=29)  # the default grace: 30 days
    [missing] = _collect(received, datetime.combine(within, time(12), UTC))
    assert missing.status == "missing"
    html, rows = _ig(cli, tmp_path, within)
    assert [r["status"] for r in rows] == ["awaiting"] and 'class="destruction overdue' not in html
    assert "destruction:" not in cli("ledger", "verify", "--as-of", within.isoformat()).output

    late = DESTROY_BY + timedelta(days=31)
    html, rows = _ig(cli, tmp_path, late)

    assert [(r["status"], r["destroy_by"]) for r in rows] == [("overdue", DESTROY_BY.isoformat())]
    [row] = re.findall(r'<tr class="destruction overdue overdue">(.*?)</tr>', html, re.S)
    assert "OVERDUE" in row and LOGICAL_DATE.isoformat() in row
    assert re.search(r'id="total-destruction-overdue">1<', html)
    verified = cli("ledger", "verify", "--as-of", late.isoformat())
    assert verified.exit_code == 3, verified.output
    [gap] = [line for line in verified.output.splitlines() if "destruction:" in line]
    assert f"to {RECIPIENT}" in gap and f"destroy by {DESTROY_BY}" in gap
    listed = cli("certificates", "--as-of", late.isoformat())
    assert listed.exit_code == 0 and "overdue" in listed.output
