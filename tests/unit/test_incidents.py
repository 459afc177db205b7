"""``record_incident``: one event is one incident, recorded whatever the notice does; the notice goes to our IG
contacts once, by the installed sender or SMTP, and its outcome is recorded."""

from __future__ import annotations

from datetime import date

import pytest

from tests.support.config_edits import copy_config
from tests.support.smtp_server import smtp_server
from transfers.agreement import load_config
from transfers.incidents import install_sender, notice_key, record_incident, smtp_sender
from transfers.ledger import Ledger
from transfers.ledger.records import Incident
from transfers.settings import Settings

DAY = date(2026, 11, 25)
SYP = "south-yorkshire-police"
CS = "rotherham-childrens-services"


@pytest.fixture
def agreement(tmp_path):
    return load_config(copy_config(tmp_path)).flow("mash-referrals.A").agreement


@pytest.fixture
def ledger(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


@pytest.fixture(autouse=True)
def no_installed_sender(monkeypatch):
    from transfers import incidents

    monkeypatch.setattr(incidents, "_installed", {})


def _record(ledger, agreement, **kw):
    args = {"what": "host-key-mismatch", "party": CS, "flow": "mash-referrals.A", "logical_date": DAY,
            "partner": SYP, "where": "sftp.syp.example:22", "evidence": "ssh-ed25519 SHA256:x",
            "detail": "SFTP server sftp.syp.example:22: host key not pinned"}
    return record_incident(ledger, agreement, **{**args, **kw})


def test_one_event_is_one_incident_and_its_notice_goes_once(ledger, agreement):
    sent = []

    def send(alert, key):
        sent.append((alert, key))
        return "sent by the test"

    first = _record(ledger, agreement, send=send)
    again = _record(ledger, agreement, send=send)
    assert first.seq is not None and again.seq == first.seq
    assert [r.what for r in ledger.records(Incident)] == ["host-key-mismatch"]
    assert len(sent) == 1 and sent[0][1] == notice_key(first)
    assert sent[0][0].addresses == ["information.governance@rotherham.example.org"]
    assert (first.notified, first.notice) == (True, "sent by the test")
    # Another key offered the same night is another incident.
    other = _record(ledger, agreement, send=send, evidence="ssh-ed25519 SHA256:y")
    assert other.seq != first.seq and len(sent) == 2


def test_a_failed_notice_is_recorded_as_not_notified_and_the_incident_still_recorded(ledger, agreement):
    def broken(alert, key):
        raise ConnectionRefusedError("smtp down")

    incident = _record(ledger, agreement, send=broken)
    assert incident.seq is not None
    assert (incident.notified, incident.notice) == (False, "not sent: ConnectionRefusedError while sending")


def test_without_an_smtp_connection_it_is_recorded_not_notified(ledger, agreement, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    settings = Settings(home=tmp_path / "home")
    assert smtp_sender(settings) is None
    incident = _record(ledger, agreement, settings=settings)
    assert not incident.notified and "no SMTP connection configured" in incident.notice


def test_an_installed_sender_is_used(ledger, agreement, tmp_path):
    install_sender(lambda settings: lambda alert, key: f"installed {alert.kind}")
    incident = _record(ledger, agreement, settings=Settings(home=tmp_path / "home"))
    assert (incident.notified, incident.notice) == (True, "installed incident")


def test_with_an_smtp_connection_the_ig_contact_is_emailed(ledger, agreement, tmp_path, monkeypatch):
    with smtp_server() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.conn_json())
        settings = Settings(home=tmp_path / "home", alerts_from="isp-transfers@rotherham.example.org")
        incident = _record(ledger, agreement, settings=settings)
    assert incident.notified and incident.notice.startswith("emailed 1 ig contact(s)")
    [mail] = server.messages
    assert mail.rcpt_tos == ["information.governance@rotherham.example.org"]
    assert mail.mail_from == "isp-transfers@rotherham.example.org"
    assert "SECURITY INCIDENT host-key-mismatch" in mail.subject and "sftp.syp.example:22" in mail.text


def test_no_ig_contact_is_said(ledger, agreement):
    incident = _record(ledger, agreement, party="nobody-here", send=lambda a, k: "never")
    assert not incident.notified and "no ig contact" in incident.notice
