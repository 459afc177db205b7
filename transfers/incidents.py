"""Security incidents for breach assessment (issue 13 item 5, ISP protocol §6.2): recorded, and the IG contact told.

``record_incident`` is the one hook every recording point calls: a host key that does not match (deliver,
receipt collection, the recipient's mailbox), a failed signature (the receive step on a manifest or part,
receipt collection on a receipt), a recipient key refused as revoked (encrypt), a subject seen again after its
withdrawal notice was sent (the privacy screen, ``withdrawn_subjects_seen``). It

1. returns the incident already recorded, untouched, if this event was recorded before (one event is one
   incident: the dedupe key is (what, flow, date, partner, evidence));
2. sends the notice (``transfers.alerts.incident_alert``) to our party's ``ig`` contacts, best effort: the
   installed sender (the Airflow edge installs one that goes through Airflow's ``SmtpNotifier``), else a
   plain ``smtplib`` sender when the SMTP connection ``TRANSFERS_ALERTS_CONN_ID`` (``AIRFLOW_CONN_SMTP_DEFAULT``)
   is set, else none;
3. records the ``incident`` entry with ``notified`` and how (or why not), whatever the send did.

It never raises: it is called where another error is about to stop the run, and that error must be
the one the run fails with. A ledger that cannot be written is logged (the error stops the run anyway).
The notice goes before the record so the record can say whether it went; a crash between the two sends
the notice again on the retry, which is the safe side.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from datetime import date
from email.message import EmailMessage
from typing import TYPE_CHECKING

from transfers.alerts import Alert, incident_alert
from transfers.connections import ConnInfo, cli_connection
from transfers.errors import TransferError
from transfers.ledger.records import Incident
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.agreement import Agreement
    from transfers.flowrun import FlowRun
    from transfers.ledger import Ledger
    from transfers.settings import Settings

__all__ = ["Sender", "install_sender", "notice_key", "record_incident", "smtp_sender", "withdrawn_subjects_seen"]

log = get_logger(__name__)

#: Sends an incident's alert (the second argument is the incident's dedupe key, to send it once);
#: returns how it went ("emailed 2 IG contact(s) ..."), or raises.
Sender = Callable[[Alert, str], str]

_installed: dict[str, Callable[[Settings], Sender | None]] = {}


def install_sender(factory: Callable[[Settings], Sender | None]) -> None:
    """Make every incident's notice go through the sender ``factory`` returns (the Airflow edge's notifier)."""
    _installed["sender"] = factory


def notice_key(incident: Incident) -> str:
    """The key an incident's notice is sent once under (``transfers.alert_claims.claim_once``)."""
    return f"incident {incident.dedupe_key()}"


def record_incident(ledger: Ledger, agreement: Agreement, *, what: str, party: str, flow: str | None = None,
                    logical_date: date | None = None, partner: str | None = None, where: str = "",
                    evidence: str = "", detail: str = "", settings: Settings | None = None,
                    send: Sender | None = None) -> Incident:
    """Record one security incident (once), and tell ``party``'s IG contacts at once (best effort).

    ``what``: one of ``transfers.ledger.records.incidents.WHATS``; ``party``: who saw it (this deployment's
    party: whose IG is told); ``partner``: the partner concerned; ``where``: host:port or file name;
    ``evidence``: a fingerprint or hash that makes it this incident; ``detail``: our own error text (names,
    never values). ``send``: the sender (default: the installed one, else SMTP from ``settings``).
    Returns the incident as recorded (``entry`` unset if the ledger could not be written).
    """
    incident = Incident(agreement=agreement.id, flow=flow, logical_date=logical_date, recipient=partner, what=what,
                        party=party, where=where, evidence=evidence, detail=detail)
    try:
        existing = ledger.find_record(Incident, incident.dedupe_key())
    except TransferError:
        existing = None
    if existing is not None:
        log.info("incident already recorded", what=what, flow=flow, ledger_seq=existing.seq)
        return existing
    notified, notice = _notify(incident_alert(agreement, incident), notice_key(incident), settings, send)
    incident = Incident(**{**_columns(incident), **incident.to_payload(), "notified": notified, "notice": notice})
    try:
        entry, _created = ledger.record(incident)
    except TransferError as exc:  # the run's own error still stops it; say the record is missing
        log.error("security incident NOT recorded in the ledger", what=what, flow=flow, error=str(exc))
        return incident
    log.error("security incident recorded", what=what, flow=flow, partner=partner, where=where,
              notified=notified, notice=notice, ledger_seq=entry.seq)
    return Incident.from_entry(entry)


def withdrawn_subjects_seen(ledger: Ledger, run: FlowRun, lookups: set[str]) -> list[Incident]:
    """Subjects (by lookup) met in tonight's extract although a withdrawal notice was already sent for them:
    one incident per subject per notice sent (per recipient), the first night it is seen.

    The prepare step excludes them every night (the sender's withdrawals register is applied whatever the
    source says), so the same subject is met again each night until the source's register catches up:
    that is one incident, not one a night, so the date is not in its key (``logical_date`` is left unset;
    the night it was first seen is in ``where``). The incident names the notice's reference, never the
    subject's lookup or pseudonym.
    """
    from transfers.ledger.records import Notice
    from transfers.ledger.records.incidents import SUBJECT_AFTER_WITHDRAWAL

    agreement = run.ref.agreement
    found = []
    for notice in ledger.records(Notice, agreement=agreement.id):
        if notice.notice != "withdrawal" or notice.lookup not in lookups:
            continue
        found.append(record_incident(
            ledger, agreement, what=SUBJECT_AFTER_WITHDRAWAL, party=run.ref.flow.from_, flow=run.ref.key,
            partner=notice.recipient, where=f"extract of {run.ref.key} on {run.ds}",
            evidence=f"withdrawal notice {notice.reference or notice.seq}",
            detail=(f"a subject whose withdrawal notice {notice.reference} was sent to {notice.recipient} (ledger entry "
                    f"{notice.seq}) is in the extract of {run.ds}; the rows were excluded. The source's consent "
                    "register does not show the withdrawal: have it corrected"),
            settings=run.settings))
    return found


def _columns(incident: Incident) -> dict[str, object]:
    return {"agreement": incident.agreement, "flow": incident.flow, "logical_date": incident.logical_date,
            "recipient": incident.recipient}


def _notify(alert: Alert, key: str, settings: Settings | None, send: Sender | None) -> tuple[bool, str]:
    if not alert.to:
        return False, "not sent: the agreement lists no ig contact for this party (add one under contacts:)"
    if send is None:
        factory = _installed.get("sender")
        try:
            send = factory(settings or _settings()) if factory else smtp_sender(settings or _settings())
        except Exception as exc:  # best effort: the incident is recorded whatever happens here
            return False, f"not sent: no sender ({type(exc).__name__})"
    if send is None:
        return False, "not sent: no SMTP connection configured (TRANSFERS_ALERTS_CONN_ID / AIRFLOW_CONN_SMTP_DEFAULT)"
    try:
        return True, send(alert, key)
    except Exception as exc:  # its text may name servers only, but the class is enough here
        log.error("incident notice not sent", kind=alert.kind, error=type(exc).__name__)
        return False, f"not sent: {type(exc).__name__} while sending"


def _settings() -> Settings:
    from transfers.settings import Settings

    return Settings()


def smtp_sender(settings: Settings) -> Sender | None:
    """A plain ``smtplib`` sender through the connection ``settings.alerts_conn_id`` (a contact's own
    ``notifier`` connection for its address), or ``None`` when that connection is not configured."""
    try:
        default = cli_connection(settings.alerts_conn_id)
    except Exception:  # not configured (SecretMissing, or Airflow's not-found): no sender
        return None

    def send(alert: Alert, key: str) -> str:
        by_conn: dict[str, list[str]] = {}
        for contact in alert.to:
            emails = by_conn.setdefault(contact.notifier or settings.alerts_conn_id, [])
            if contact.email not in emails:
                emails.append(contact.email)
        for conn_id, emails in by_conn.items():
            conn = default if conn_id == settings.alerts_conn_id else cli_connection(conn_id)
            _smtp_send(conn, settings.alerts_from, emails, alert)
        count = sum(len(e) for e in by_conn.values())
        return f"emailed {count} ig contact(s) through {', '.join(by_conn)}"

    return send


def _smtp_send(conn: ConnInfo, sender: str, to: list[str], alert: Alert) -> None:
    """As Airflow's SMTP hook reads the connection: SSL unless ``disable_ssl``, then STARTTLS unless ``disable_tls``."""
    extra = conn.extra or {}
    timeout = float(extra.get("timeout", 30))
    host, use_ssl = conn.host or "localhost", not _flag(extra.get("disable_ssl"))
    port = conn.port or (465 if use_ssl else 25)
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = alert.subject, sender, ", ".join(to)
    message.set_content(alert.body)
    client: smtplib.SMTP = (smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
                            if use_ssl else smtplib.SMTP(host, port, timeout=timeout))
    with client:
        if not use_ssl and not _flag(extra.get("disable_tls")):
            client.starttls(context=ssl.create_default_context())
        if conn.login:
            client.login(conn.login, conn.password or "")
        client.send_message(message, from_addr=sender, to_addrs=to)


def _flag(value: object) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")
