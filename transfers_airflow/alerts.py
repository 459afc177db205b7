"""Alerts through Airflow's notifier mechanism: the messages ``transfers.alerts`` builds, sent by the SMTP
provider's ``SmtpNotifier`` through an Airflow SMTP connection.

``FlowFailureNotifier`` is a send or receive DAG's tasks' ``on_failure_callback``: one message per failed DAG run
(the first failed task claims the run; a second failed task of the same run sends nothing). The
retention DAG calls ``send_daily_alerts`` once a day. The connection is ``TRANSFERS_ALERTS_CONN_ID``
(default ``smtp_default``: ``AIRFLOW_CONN_SMTP_DEFAULT`` or any secrets backend), unless a contact
names its own ``notifier`` connection.

Security incidents (``transfers.incidents``) go through the same notifier: importing this module installs
``incident_sender`` as the incidents' sender (the DAG file imports it, so every task records and notifies an
incident through ``SmtpNotifier``), each incident claimed once; ``FlowFailureNotifier`` additionally sends,
once each, the failed run's incidents whose notice did not go when they were recorded.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

from transfers.alert_claims import claim_once, release_claim
from transfers.alerts import Alert, daily_alerts, failure_alert, incident_alert
from transfers.incidents import Sender, install_sender, notice_key
from transfers.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["FlowFailureNotifier", "incident_sender", "send_alert", "send_daily_alerts"]


def send_alert(alert: Alert, settings: Settings, context: Mapping[str, Any]) -> int:
    """Send ``alert`` to its contacts, one message per notifier connection; the number of messages sent.

    With no contact for it, nothing is sent and the log says which contacts to add to the agreement.
    """
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    if not alert.to:
        log.warning("alert %s not sent: the agreement lists no contact for it (add `contacts:` with the role "
                    "named in transfers.alerts)", alert.kind)
        return 0
    by_conn: dict[str, list[str]] = {}
    for contact in alert.to:
        emails = by_conn.setdefault(contact.notifier or settings.alerts_conn_id, [])
        if contact.email not in emails:
            emails.append(contact.email)
    # Plain text in <pre>, escaped: the notifier sends HTML. Its fields are set, so it renders no template
    # (a path with "{{" in it stays text).
    content = f"<pre>{html.escape(alert.body)}</pre>"
    for conn_id, emails in by_conn.items():
        notifier = SmtpNotifier(to=emails, from_email=settings.alerts_from, subject=alert.subject,
                                html_content=content, smtp_conn_id=conn_id)
        notifier.notify(dict(context))  # type: ignore[arg-type]  # a plain mapping is all it reads
    return len(by_conn)


def _send_once(alert: Alert, settings: Settings, key: str, context: Mapping[str, Any]) -> bool:
    settings.home.mkdir(parents=True, exist_ok=True)  # the default SQLite ledger lives there
    if not claim_once(settings.ledger_database, key):
        return False
    try:
        send_alert(alert, settings, context)
    except Exception:
        release_claim(settings.ledger_database, key)  # not sent: the next failed task (or tomorrow's run) tries again
        raise
    return True


class FlowFailureNotifier(BaseNotifier):
    """A flow DAG's ``on_failure_callback``: the failed stage, what happened and the next step, once per DAG run.

    A quality block goes to the data owner with the scorecard's path, an overdue receipt and any other
    failure to the sending partner's engineers (``transfers.alerts.failure_alert``).
    """

    def __init__(self, config_dir: Path | str, *, flow: str | None = None, partner: str | None = None) -> None:
        """``flow``: the ``<agreement>.<flow>`` key (default the DAG id, as for a send DAG); ``partner``: whose
        engineers a failure goes to (default the flow's sender; a receive DAG names its recipient)."""
        super().__init__()
        self.config_dir, self.flow, self.partner = str(config_dir), flow, partner

    def notify(self, context: Any) -> None:
        from transfers.agreement import load_config
        from transfers.logical_date import flow_date

        settings = Settings(config_dir=Path(self.config_dir))
        dag_id, run_id = context["dag"].dag_id, context.get("run_id", "")
        ref = load_config(settings.config_dir).flow(self.flow or dag_id)
        ti = context.get("ti") or context.get("task_instance")
        stage = getattr(ti, "task_id", None) or "the DAG run"
        start = context.get("logical_date") or context.get("data_interval_start")
        day = flow_date(start, ref.flow.timezone).isoformat() if start is not None else "(no logical date)"
        alert = failure_alert(ref, day, stage, context.get("exception"), partner=self.partner)
        if not _send_once(alert, settings, f"{dag_id} {run_id}", context):
            log.info("alert for %s %s already sent for this DAG run", dag_id, run_id)
        _send_incidents(settings, ref.key, day, context)


def _send_incidents(settings: Settings, flow: str, day: str, context: Mapping[str, Any]) -> None:
    """The flow's incidents of ``day`` whose notice did not go when recorded, each once (best effort: the failure
    alert went already, and an incident's record stands whatever happens here)."""
    from transfers.agreement import load_config
    from transfers.ledger.records import Incident

    try:
        config = load_config(settings.config_dir)
        with settings.open_ledger() as ledger:
            pending = [i for i in ledger.records(Incident, flow=flow)
                       if not i.notified and (i.logical_date is None or i.logical_date.isoformat() == day)]
        for incident in pending:
            agreement = config.flow(flow).agreement
            if _send_once(incident_alert(agreement, incident), settings, notice_key(incident), context):
                log.warning("incident %s (ledger entry %s) sent to IG by the failure callback", incident.what,
                            incident.seq)
    except Exception as exc:
        log.error("incident notices not sent by the failure callback: %s", type(exc).__name__)


def send_daily_alerts(config_dir: Path | str, timezone: str, context: Mapping[str, Any]) -> dict[str, int]:
    """The retention DAG's daily alerts (agreements due for review, destruction certificates overdue), each once
    a day (``today`` on ``timezone``'s clock); counts of those sent and of those already sent today."""
    from transfers.agreement import load_config
    from transfers.logical_date import flow_today

    settings = Settings(config_dir=Path(config_dir))
    config = load_config(settings.config_dir)
    today = flow_today(timezone)
    sent = already = 0
    with settings.open_ledger() as ledger:
        alerts = daily_alerts(config, ledger, today, grace_days=settings.destruction_grace_days)
    for key, alert in alerts:
        if _send_once(alert, settings, key, context):
            sent += 1
        else:
            already += 1
    return {"sent": sent, "already_sent": already}



def incident_sender(settings: Settings) -> Sender:
    """The incidents' sender in Airflow: ``SmtpNotifier`` through the alerts connection, each incident claimed once
    (``transfers.alert_claims.claim_once``), so the failure callback does not send it again."""

    def send(alert: Alert, key: str) -> str:
        if not _send_once(alert, settings, key, {}):
            return "already sent (claimed) by another task"
        return f"sent to {len(alert.addresses)} ig contact(s) through Airflow's SmtpNotifier"

    return send


# Every task that imports the DAG file (and so this module) records incidents and tells IG through Airflow.
install_sender(incident_sender)
