"""The police destroy what they received from Children's Services on the controller's date; legal holds keep it.

Two parties (``exchange_world``): the sender's real night for flow A over the police's own sshd, the
police receiving into their store on PostgreSQL, then ``transfers purge`` run as the police
(TRANSFERS_PARTY south-yorkshire-police) with ``--as-of`` before and after the manifest's destroy_by;
and a rejected delivery's quarantine folder, destroyed on its own date.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.exchange_world import FLOW, RECIPIENT, SENDER, Exchange, exchange, police_keys, police_sshd
from transfers.errors import DeliveryRejected
from transfers.ledger.records import Destroyed, LegalHold
from transfers.receipt import delivery_id

__all__ = ["exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

ID = delivery_id("mash-referrals", "A", LOGICAL_DATE.isoformat(), RECIPIENT)
TABLE = "received_mash_referrals_a"


def destroy_by(ex: Exchange):
    """The sample agreement's controller period (P6Y) after the logical date, as the signed manifest carries it."""
    return ex.police.config.flow(FLOW).agreement.retention.period.after(LOGICAL_DATE)


def as_police(ex: Exchange, monkeypatch, *args: str):
    """``transfers ...`` with the police's environment."""
    from transfers.cli import app

    settings = ex.police.settings
    for name, value in {"HOME": settings.home, "CONFIG_DIR": settings.config_dir, "KEYS_DIR": settings.keys,
                        "PARTY": RECIPIENT, "STORE_URL": ex.store_url, "INBOX_DIR": settings.inbox}.items():
        monkeypatch.setenv(f"TRANSFERS_{name}", str(value))
    monkeypatch.setenv("COLUMNS", "400")
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def rows(ex: Exchange, where: str = "", **params: str) -> list[dict]:
    engine = sa.create_engine(ex.store_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(TABLE):
                return []
            return [dict(r._mapping) for r in conn.execute(sa.text(f'SELECT * FROM "{TABLE}" {where}'), params)]
    finally:
        engine.dispose()


def ig_doc(ex: Exchange) -> dict:
    """The police's IG report figures for the days around the run, and far enough on for the destruction."""
    from datetime import UTC, datetime

    from transfers.reports.ig import build

    today = datetime.now(UTC).date()
    with ex.police.settings.open_ledger() as ledger:
        return build(ex.police.settings, ex.police.config, ledger, today - timedelta(days=2), today + timedelta(days=1))


def police_records(ex: Exchange, cls):
    with ex.police.settings.open_ledger() as ledger:
        return list(ledger.records(cls))


def received(ex: Exchange) -> int:
    ex.send()
    result = ex.police.receive()
    assert result["status"] == "accepted"
    stored = rows(ex)
    assert len(stored) == result["rows"] > 0
    assert {r["destroy_by"] for r in stored} == {destroy_by(ex)}  # from the signed manifest, per row
    return result["rows"]


def test_received_rows_are_destroyed_on_the_controllers_date_and_not_before(exchange, monkeypatch):
    count, due = received(exchange), destroy_by(exchange)

    early = as_police(exchange, monkeypatch, "purge", "--as-of", (due - timedelta(days=1)).isoformat())
    assert early.exit_code == 0, early.output
    assert ID not in early.output and len(rows(exchange)) == count and police_records(exchange, Destroyed) == []

    listed = as_police(exchange, monkeypatch, "purge", "--dry-run", "--as-of", due.isoformat())
    line = next(text for text in listed.output.splitlines() if ID in text)
    assert "received" in line and f"{count} rows" in line and due.isoformat() in line
    assert len(rows(exchange)) == count  # a dry run deletes nothing

    done = as_police(exchange, monkeypatch, "purge", "--as-of", due.isoformat())
    assert done.exit_code == 0, done.output
    assert rows(exchange) == []
    (record,) = police_records(exchange, Destroyed)
    assert (record.place, record.delivery_id, record.rows, record.complete) == ("received", ID, count, True)
    assert (record.recipient, record.sender, record.controller) == (RECIPIENT, SENDER, SENDER)
    assert record.destroy_by == due.isoformat() and record.rule == f"controller {SENDER} P6Y (manifest)"
    assert record.verified.startswith("absent after deletion") and record.flow == FLOW
    # The sender's ledger is the sender's: nothing of the police's destruction is written there.
    assert exchange.sender_records(Destroyed) == []
    with exchange.police.settings.open_ledger() as ledger:
        assert ledger.verify().ok


def test_a_held_delivery_is_listed_as_held_and_destroyed_once_the_hold_is_lifted(exchange, monkeypatch):
    count, due = received(exchange), destroy_by(exchange)
    added = as_police(exchange, monkeypatch, "hold", "add", "--delivery", ID, "--reason", "case 2032/7",
                      "--by", "ig-officer")
    assert added.exit_code == 0, added.output

    listed = as_police(exchange, monkeypatch, "purge", "--dry-run", "--as-of", due.isoformat())
    line = next(text for text in listed.output.splitlines() if ID in text)
    assert "held: legal hold on the delivery" in line and "case 2032/7" in line
    kept = as_police(exchange, monkeypatch, "purge", "--as-of", due.isoformat())
    assert kept.exit_code == 0, kept.output
    assert "1 held" in kept.output and f"held: received {FLOW} {ID}: legal hold" in kept.output
    assert len(rows(exchange)) == count and police_records(exchange, Destroyed) == []
    # The police's IG report shows the hold in force with its reason.
    assert [(h["scope"], h["target"], h["reason"], h["by"]) for h in ig_doc(exchange)["holds"]] == [
        ("delivery", ID, "case 2032/7", "ig-officer")]

    lifted = as_police(exchange, monkeypatch, "hold", "remove", "--delivery", ID, "--reason", "case closed")
    assert lifted.exit_code == 0, lifted.output
    as_police(exchange, monkeypatch, "purge", "--as-of", due.isoformat())
    assert rows(exchange) == [] and len(police_records(exchange, Destroyed)) == 1
    assert [h.action for h in police_records(exchange, LegalHold)] == ["add", "lift"]
    doc = ig_doc(exchange)
    assert doc["holds"] == [] and [(d["delivery_id"], d["rows"]) for d in doc["destroyed"]] == [(ID, count)]


def test_a_subject_hold_keeps_only_that_subjects_rows(exchange, monkeypatch):
    count, due = received(exchange), destroy_by(exchange)
    subject = rows(exchange)[0]["nhs_number"]  # a pseudonym: the flow pseudonymises its subject column
    theirs = len(rows(exchange, "WHERE nhs_number = :s", s=subject))
    assert 0 < theirs < count
    held = as_police(exchange, monkeypatch, "hold", "add", "--subject", subject, "--reason", "case 2032/8")
    assert held.exit_code == 0, held.output
    assert subject not in held.output

    as_police(exchange, monkeypatch, "purge", "--as-of", due.isoformat())
    left = rows(exchange)
    assert len(left) == theirs and {r["nhs_number"] for r in left} == {subject}
    (partial,) = police_records(exchange, Destroyed)
    assert (partial.rows, partial.held_rows, partial.complete) == (count - theirs, theirs, False)

    as_police(exchange, monkeypatch, "hold", "remove", "--subject", subject, "--reason", "case closed")
    as_police(exchange, monkeypatch, "purge", "--as-of", due.isoformat())
    assert rows(exchange) == []
    assert [(d.rows, d.complete) for d in police_records(exchange, Destroyed)] == [(count - theirs, False),
                                                                                  (count, True)]


def test_a_rejected_delivery_in_quarantine_is_destroyed_on_its_date_and_not_before(exchange, monkeypatch):
    exchange.send()
    part = sorted(exchange.inbox.glob("mash-referrals_A_*.pgp"))[0]
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # changed on the way: the police reject and quarantine it
    part.write_bytes(bytes(data))
    with pytest.raises(DeliveryRejected):
        exchange.police.receive()
    folder = exchange.police.settings.layout.quarantine_dir("mash-referrals", "A", LOGICAL_DATE, SENDER)
    reason = json.loads((folder / "reason.json").read_text())
    today = datetime.now(UTC).date()
    if reason.get("destroy_by"):  # the receive passed the signed manifest's date: the controller's rule
        before, after = destroy_by(exchange) - timedelta(days=1), destroy_by(exchange)
        rule = f"controller {SENDER} P6Y (manifest)"
    else:  # no date from the manifest: the flow's staging period (P7D) after quarantine
        before, after = today + timedelta(days=6), today + timedelta(days=8)
        rule = "retention.staging P7D after quarantine (no readable manifest)"

    kept = as_police(exchange, monkeypatch, "purge", "--as-of", before.isoformat())
    assert kept.exit_code == 0, kept.output
    assert folder.exists() and police_records(exchange, Destroyed) == []

    gone = as_police(exchange, monkeypatch, "purge", "--as-of", after.isoformat())
    assert gone.exit_code == 0, gone.output
    assert not folder.exists() and not (exchange.police.settings.home / "quarantine" / "mash-referrals").exists()
    (record,) = police_records(exchange, Destroyed)
    assert (record.place, record.delivery_id, record.path, record.rule) == ("quarantine", ID, str(folder), rule)
    assert "reason.json" in {f.remote_path for f in record.files} and record.verified.startswith("absent")
