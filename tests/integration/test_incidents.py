"""Security incidents with real parts (issue 13 item 5): a delivery to an sshd whose host key is not the pinned
one stops as before and records one `incident`; the IG contact's email is captured by a real SMTP server."""

from __future__ import annotations

import pytest

from tests.integration.conftest import LOGICAL_DATE, sftp_conn
from tests.support.smtp_server import smtp_server
from transfers.errors import HostKeyMismatch
from transfers.ledger.records import Incident
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

IG = "information.governance@rotherham.example.org"  # flow A's sender's ig contact in the sample agreement


@pytest.fixture(autouse=True)
def plain_smtp(monkeypatch):
    """The CLI's path: no Airflow sender installed (another test may have imported the Airflow edge)."""
    from transfers import incidents

    monkeypatch.setattr(incidents, "_installed", {})


def _incidents(world) -> list[Incident]:
    with world.settings.open_ledger() as ledger:
        return list(ledger.records(Incident))


def test_a_host_key_that_is_not_pinned_records_one_incident_and_the_run_still_fails(world, sshd, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)

    for _attempt in range(2):  # the retry meets the same key: still one incident
        with pytest.raises(HostKeyMismatch):
            run_flow(world.run("mash-referrals.A"), world.resolvers())

    [incident] = _incidents(world)
    assert (incident.what, incident.flow, incident.logical_date) == ("host-key-mismatch", "mash-referrals.A",
                                                                     LOGICAL_DATE)
    assert (incident.party, incident.recipient) == ("rotherham-childrens-services", "south-yorkshire-police")
    assert incident.where == f"{sshd.host}:{sshd.port}"
    assert incident.evidence.startswith("ssh-ed25519 SHA256:") and incident.evidence in incident.detail
    assert not incident.notified and "no SMTP connection configured" in incident.notice
    assert world.remote_names("inbound/mash") == []
    with world.settings.open_ledger() as ledger:
        assert list(ledger.entries(kind="disclosure")) == []


def test_the_ig_contact_is_emailed_at_once_through_the_configured_smtp_connection(world, sshd, monkeypatch):
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)
    with smtp_server() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.conn_json())
        with pytest.raises(HostKeyMismatch):
            run_flow(world.run("mash-referrals.A"), world.resolvers())
        with pytest.raises(HostKeyMismatch):
            run_flow(world.run("mash-referrals.A"), world.resolvers())  # no second email for the same incident

    [mail] = server.messages
    assert mail.rcpt_tos == [IG]
    assert "SECURITY INCIDENT host-key-mismatch" in mail.subject and "mash-referrals.A" in mail.subject
    [incident] = _incidents(world)
    assert incident.evidence in mail.text and f"{sshd.host}:{sshd.port}" in mail.text
    assert incident.notified and incident.notice == "emailed 1 ig contact(s) through smtp_default"


def test_a_recipient_key_refused_as_revoked_records_an_incident_and_nothing_is_sent(world, gpg_home, gpg_sender,
                                                                                    monkeypatch):
    import yaml

    from transfers.agreement import load_config
    from transfers.devkit.signoff import sign_for_partners
    from transfers.errors import KeyRefused

    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    fpr = gpg_home.generate_key("Police Inbox <inbox@syp.example.invalid>", algo="cv25519")
    revoked = gpg_home.revoke(fpr, world.root / "police-revoked.asc")
    key_file = world.settings.keys / "south-yorkshire-police.asc"
    key_file.write_text(revoked.read_text() + gpg_sender.public_key_path.read_text())  # signing key stays
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    for flow in data["flows"]:
        for recipient in flow["to"]:
            if recipient["partner"] == "south-yorkshire-police":
                recipient["pgp_fingerprint"] = fpr  # pinned, then revoked by its owner
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sign_for_partners(world.settings.config_dir, gpg_sender.secret)
    world.config = load_config(world.settings.config_dir)

    with pytest.raises(KeyRefused, match="revoked"):
        run_flow(world.run("mash-referrals.A"), world.resolvers())

    [incident] = _incidents(world)
    assert (incident.what, incident.recipient, incident.evidence) == ("key-revoked", "south-yorkshire-police", fpr)
    assert incident.where == "south-yorkshire-police.asc" and "revoked" in incident.detail
    assert world.remote_names("inbound/mash") == []


def _failure_context(run_id: str) -> dict:
    from datetime import UTC, datetime, timedelta

    class _Dag:
        dag_id = "mash-referrals.A"

    class _Ti:
        task_id = "deliver_south-yorkshire-police"

    start = datetime.combine(LOGICAL_DATE, datetime.min.time(), tzinfo=UTC) + timedelta(hours=2)
    return {"dag": _Dag(), "run_id": run_id, "ti": _Ti(), "logical_date": start,
            "exception": HostKeyMismatch("SFTP server 127.0.0.1: host key not pinned")}


def test_in_airflow_the_notice_goes_through_smtp_notifier_once_and_the_failure_alert_besides(world, sshd,
                                                                                             monkeypatch):
    from transfers.incidents import install_sender
    from transfers_airflow.alerts import FlowFailureNotifier, incident_sender

    install_sender(incident_sender)
    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)
    with smtp_server() as server:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.conn_json())
        with pytest.raises(HostKeyMismatch):
            run_flow(world.run("mash-referrals.A"), world.resolvers())
        FlowFailureNotifier(world.settings.config_dir).notify(_failure_context("manual__1"))

    subjects = sorted(m.subject for m in server.messages)
    assert len(subjects) == 2, subjects  # the incident (once) and the failed run's alert
    assert "SECURITY INCIDENT host-key-mismatch" in subjects[0] and "failed at deliver" in subjects[1]
    [incident] = _incidents(world)
    assert incident.notified and "SmtpNotifier" in incident.notice


def test_in_airflow_an_incident_not_notified_when_recorded_goes_with_the_failure_alert(world, sshd, monkeypatch):
    import json

    from transfers.incidents import install_sender
    from transfers_airflow.alerts import FlowFailureNotifier, incident_sender

    install_sender(incident_sender)
    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", sshd, host_key=sshd.other_host_key_line)
    with smtp_server() as server:
        down = json.loads(server.conn_json())
        down["port"] = 1  # nothing listens there while the task runs
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(down))
        with pytest.raises(HostKeyMismatch):
            run_flow(world.run("mash-referrals.A"), world.resolvers())
        [incident] = _incidents(world)
        assert not incident.notified and "while sending" in incident.notice
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", server.conn_json())
        notifier = FlowFailureNotifier(world.settings.config_dir)
        notifier.notify(_failure_context("manual__1"))
        notifier.notify(_failure_context("manual__2"))  # the retry's failure: the incident is not sent again

    incident_mails = [m for m in server.messages if "SECURITY INCIDENT" in m.subject]
    assert len(incident_mails) == 1 and incident_mails[0].rcpt_tos == [IG]
    assert len(server.messages) == 3  # and one failure alert per DAG run
