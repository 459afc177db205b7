"""Alerts sent through Airflow's notifier mechanism to a real SMTP server (aiosmtpd on 127.0.0.1).

A failed night sends one email naming the flow and the stage; a quality block sends the data owner the
scorecard's location; the retention DAG tells IG of an agreement due for review once a day.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.test_dag_run import airflow_env, airflow_home
from tests.support.smtp_server import smtp_server
from transfers.devkit import synthetic

__all__ = ["airflow_home"]  # the module's Airflow metadata database, shared with the DAG run tests' fixture

pytestmark = pytest.mark.integration

ENGINEER_B = "integration-team@rft.example.nhs.uk"  # flow B's sender is the trust
DATA_OWNER_B = "named-nurse-safeguarding@rft.example.nhs.uk"


@pytest.fixture
def smtp():
    with smtp_server() as server:
        yield server


def _env(world, airflow_home, smtp) -> dict:
    """The flow DAGs' environment (as the DAG run tests give it), with the SMTP server alerts go to."""
    return {**airflow_env(world, airflow_home), "AIRFLOW_CONN_SMTP_DEFAULT": smtp.conn_json(),
            "TRANSFERS_ALERTS_FROM": "isp-transfers@rft.example.nhs.uk"}


def _dags_test(dag_id: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "airflow", "dags", "test", dag_id, LOGICAL_DATE.isoformat()],
                          env=env, capture_output=True, text=True, timeout=600)


def _edit(world, change) -> None:
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()


@pytest.mark.airflow
def test_a_failed_night_sends_one_email_naming_the_flow_and_stage(world, sshd, airflow_home, smtp):
    def lapse(data):
        data["in_force"], data["review_by"] = "2025-01-01", "2025-12-31"

    _edit(world, lapse)

    result = _dags_test("mash-referrals.B", _env(world, airflow_home, smtp))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert len(smtp.messages) == 1, output[-3000:]
    [mail] = smtp.messages
    assert mail.rcpt_tos == [ENGINEER_B]
    assert mail.mail_from == "isp-transfers@rft.example.nhs.uk"
    assert "mash-referrals.B" in mail.subject and "check_agreement" in mail.subject
    assert f"Logical date: {LOGICAL_DATE}" in mail.text
    assert "lapsed on 2025-12-31" in mail.text and "Next step:" in mail.text
    assert world.delivered("inbound/ed-attendances") == []


@pytest.mark.airflow
def test_a_quality_block_sends_the_data_owner_the_scorecard_s_location(world, sshd, airflow_home, smtp):
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    bad_nhs = "9990001236"  # a wrong check digit: accuracy fails, and flow B blocks on accuracy
    frame.at[4, "nhs_number"] = bad_nhs
    synthetic.write_ed_csv(world.root / "exports", LOGICAL_DATE, frame)

    result = _dags_test("mash-referrals.B", _env(world, airflow_home, smtp))

    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert len(smtp.messages) == 1, output[-3000:]
    [mail] = smtp.messages
    assert mail.rcpt_tos == [DATA_OWNER_B]
    assert "blocked by data quality" in mail.subject and "mash-referrals.B" in mail.subject
    reports = world.settings.home / "reports" / "mash-referrals" / "B"
    [scorecard] = reports.glob("quality_B_*.html")
    assert f"Scorecard: {scorecard}" in mail.text
    assert "Stage: quality" in mail.text
    assert bad_nhs not in mail.text + mail.subject  # counts and paths, never a record value


def test_the_failure_notifier_sends_once_per_dag_run(world, smtp, monkeypatch):
    from transfers.errors import DeliveryRefused
    from transfers_airflow.alerts import FlowFailureNotifier

    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.conn_json())

    class _Dag:
        dag_id = "mash-referrals.A"

    class _Ti:
        def __init__(self, task_id: str) -> None:
            self.task_id = task_id

    start = datetime.combine(LOGICAL_DATE, datetime.min.time(), tzinfo=UTC) + timedelta(hours=2)
    notifier = FlowFailureNotifier(world.settings.config_dir)
    for task_id, run_id in [("deliver_south-yorkshire-police", "manual__1"), ("cleanup", "manual__1"),
                            ("deliver_south-yorkshire-police", "manual__2")]:
        notifier.notify({"dag": _Dag(), "run_id": run_id, "ti": _Ti(task_id), "logical_date": start,
                         "exception": DeliveryRefused("syp_sftp: login refused by 127.0.0.1:2222")})

    assert [m.subject for m in smtp.messages] == [
        f"[isp-transfers] mash-referrals.A {LOGICAL_DATE}: failed at deliver_south-yorkshire-police"] * 2
    assert all(m.rcpt_tos == ["mash-data-team@rotherham.example.org"] for m in smtp.messages)
    assert "login refused by 127.0.0.1:2222" in smtp.messages[0].text


def test_an_unreachable_smtp_server_leaves_the_alert_to_be_sent_by_the_next_failure(world, smtp, monkeypatch):
    from transfers_airflow.alerts import FlowFailureNotifier

    class _Dag:
        dag_id = "mash-referrals.A"

    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    down = yaml.safe_load(smtp.conn_json())
    down["port"] = 1  # nothing listens there
    import json

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps(down))
    context = {"dag": _Dag(), "run_id": "manual__3", "logical_date": None, "exception": None}
    with pytest.raises(Exception):  # noqa: B017 - whatever the SMTP client raises, the task log shows it
        FlowFailureNotifier(world.settings.config_dir).notify(context)

    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.conn_json())
    FlowFailureNotifier(world.settings.config_dir).notify(context)
    assert len(smtp.messages) == 1


@pytest.mark.airflow
def test_the_retention_dag_tells_ig_of_a_review_due_once_a_day(world, sshd, airflow_home, smtp):
    soon = datetime.now(UTC).date() + timedelta(days=10)
    _edit(world, lambda data: data.update(review_by=soon.isoformat()))
    env = _env(world, airflow_home, smtp)

    first = _dags_test("isp-retention", env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    env_again = {**env}
    second = subprocess.run([sys.executable, "-m", "airflow", "dags", "test", "isp-retention",
                             (LOGICAL_DATE - timedelta(days=1)).isoformat()],
                            env=env_again, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]

    assert len(smtp.messages) == 1
    [mail] = smtp.messages
    assert sorted(mail.rcpt_tos) == sorted(["information.governance@rotherham.example.org", "ig@rft.example.nhs.uk",
                                            "data-protection@syp.example.police.uk"])
    assert f"review due by {soon}" in mail.subject


def test_a_receive_dag_s_failure_goes_to_the_recipient_s_engineers(world, smtp, monkeypatch):
    from transfers.agreement import receive_dag_id
    from transfers.errors import DeliveryRejected
    from transfers_airflow.alerts import FlowFailureNotifier

    ref = world.config.flow("mash-referrals.A")

    class _Dag:
        dag_id = receive_dag_id(ref)

    monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", smtp.conn_json())
    notifier = FlowFailureNotifier(world.settings.config_dir, flow=ref.key, partner="south-yorkshire-police")
    notifier.notify({"dag": _Dag(), "run_id": "manual__1", "logical_date": None,
                     "exception": DeliveryRejected("mash-referrals_A.csv.pgp: signature does not verify")})

    [mail] = smtp.messages
    assert mail.rcpt_tos == ["mash-systems@syp.example.police.uk"]
    assert "signature does not verify" in mail.text and "Stage: the DAG run" in mail.text
