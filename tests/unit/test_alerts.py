"""The alert messages and who gets each: flow, date, stage, what happened, next step; never a record value."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.config_edits import copy_config, edit
from transfers.agreement import load_config
from transfers.alert_claims import claim_once, release_claim
from transfers.alerts import (
    certificate_overdue_alert,
    daily_alerts,
    failure_alert,
    quality_block_alert,
    review_due,
    review_due_alert,
    what_happened,
)
from transfers.errors import AgreementNotLive, QualityBlocked, ReceiptOverdue, SourceError

DAY = date(2026, 11, 25)
ENGINEER = "mash-data-team@rotherham.example.org"
DATA_OWNER = "mash-safeguarding-lead@rotherham.example.org"
NHS_ENGINEER = "integration-team@rft.example.nhs.uk"


@pytest.fixture
def config(tmp_path):
    return load_config(copy_config(tmp_path))


class _AirflowFail(Exception):
    """Stands in for Airflow's AirflowFailException, which the DAG raises ``from None`` over our error."""


def _as_the_dag_raises(error: Exception) -> Exception:
    try:
        try:
            raise error
        except Exception as exc:
            raise _AirflowFail(str(exc)) from None
    except _AirflowFail as fail:
        return fail


def test_a_failed_task_tells_the_sending_partner_s_engineers_the_flow_date_stage_and_next_step(config):
    ref = config.flow("mash-referrals.A")
    error = AgreementNotLive("agreement mash-referrals: lapsed on 2026-03-31 (review_by) and has not been renewed")

    alert = failure_alert(ref, DAY, "check_agreement", _as_the_dag_raises(error))

    assert alert.kind == "failure"
    assert alert.addresses == [ENGINEER]
    assert "mash-referrals.A" in alert.subject and "2026-11-25" in alert.subject and "check_agreement" in alert.subject
    assert "Stage: check_agreement" in alert.body
    assert "lapsed on 2026-03-31" in alert.body
    assert "Next step:" in alert.body and "transfers run mash-referrals.A --date 2026-11-25" in alert.body


def test_flow_b_s_failure_goes_to_its_own_sender_s_engineers(config):
    alert = failure_alert(config.flow("mash-referrals.B"), DAY, "extract", SourceError("x.csv: missing"))

    assert alert.addresses == [NHS_ENGINEER]


def test_a_receive_dag_s_failure_goes_to_the_recipient_s_engineers(config):
    alert = failure_alert(config.flow("mash-referrals.A"), DAY, "receive", None, partner="south-yorkshire-police")

    assert alert.addresses == ["mash-systems@syp.example.police.uk"]


def test_an_error_that_is_not_ours_is_named_by_its_class_only():
    leaked = ValueError("could not convert 'Quillon Smith' to a date")

    text = what_happened(leaked)

    assert "ValueError" in text and "Quillon" not in text
    assert "task log" in what_happened(None)


def test_a_failure_message_never_carries_a_foreign_error_s_text(config):
    alert = failure_alert(config.flow("mash-referrals.A"), DAY, "prepare", KeyError("9990001236"))

    assert "9990001236" not in alert.subject + alert.body
    assert "KeyError" in alert.body


def test_a_quality_block_goes_to_the_data_owner_with_the_scorecard_s_path(config):
    ref = config.flow("mash-referrals.A")
    report = "/var/transfers/reports/mash-referrals/A/quality_A_2026-11-25.html"
    blocked = QualityBlocked("flow mash-referrals.A on 2026-11-25: blocked by data quality: validity (3 of 40 rows)",
                             report=report)

    alert = failure_alert(ref, DAY, "quality", _as_the_dag_raises(blocked))

    assert alert.kind == "quality-block"
    assert alert.addresses == [DATA_OWNER]
    assert f"Scorecard: {report}" in alert.body
    assert "validity (3 of 40 rows)" in alert.body and "Stage: quality" in alert.body
    assert "blocked by data quality" in alert.subject


def test_a_quality_block_without_a_scorecard_says_so(config):
    alert = quality_block_alert(config.flow("mash-referrals.A"), DAY, None)

    assert "no scorecard was written" in alert.body


def test_an_overdue_receipt_tells_the_sender_s_engineers_to_ask_the_recipient(config):
    ref = config.flow("mash-referrals.A")
    overdue = ReceiptOverdue("no receipt from south-yorkshire-police for mash-referrals_A_2026-11-25 within P1D")

    alert = failure_alert(ref, DAY, "await_receipt_south-yorkshire-police", _as_the_dag_raises(overdue))

    assert alert.kind == "receipt-overdue"
    assert alert.addresses == [ENGINEER]
    assert "receipt overdue" in alert.subject and "ask the recipient" in alert.body


def test_an_overdue_destruction_certificate_goes_to_the_controller_s_ig(config):
    alert = certificate_overdue_alert(config.flow("mash-referrals.A"), "2020-01-01", "south-yorkshire-police",
                                      date(2026, 1, 1))

    assert alert.addresses == ["information.governance@rotherham.example.org"]
    assert "south-yorkshire-police" in alert.subject and "2026-01-01" in alert.body


def test_review_due_within_30_days_goes_to_every_partner_s_ig(config):
    agreement = config.agreement("mash-referrals").agreement
    today = agreement.review_by - timedelta(days=30)

    assert review_due(agreement, today)
    assert not review_due(agreement, today - timedelta(days=1))
    assert not review_due(agreement, agreement.review_by + timedelta(days=1))  # lapsed: the flows fail instead
    alert = review_due_alert(agreement, today)
    assert set(alert.addresses) == {"information.governance@rotherham.example.org", "ig@rft.example.nhs.uk",
                                    "data-protection@syp.example.police.uk"}
    assert "30 day(s)" in alert.body and str(agreement.review_by) in alert.subject


def test_an_agreement_without_contacts_builds_an_alert_for_nobody(tmp_path):
    config_dir = copy_config(tmp_path)
    edit(config_dir, lambda d: d.pop("contacts"))

    alert = failure_alert(load_config(config_dir).flow("mash-referrals.A"), DAY, "extract", None)

    assert alert.to == ()


class _NoLedger:
    def records(self, *_args, **_kwargs):
        return []


def test_daily_alerts_key_a_review_once_per_agreement_per_day(config):
    agreement = config.agreement("mash-referrals").agreement
    today = agreement.review_by - timedelta(days=3)

    alerts = daily_alerts(config, _NoLedger(), today, grace_days=30)  # type: ignore[arg-type]

    assert [key for key, _ in alerts] == [f"review-due mash-referrals {today}"]
    assert daily_alerts(config, _NoLedger(), today - timedelta(days=60), grace_days=30) == []  # type: ignore[arg-type]


def test_a_key_is_claimed_once_until_released(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"

    assert claim_once(url, "mash-referrals.A scheduled__2026-11-25T02:00:00+00:00")
    assert not claim_once(url, "mash-referrals.A scheduled__2026-11-25T02:00:00+00:00")
    assert claim_once(url, "mash-referrals.A manual__2026-11-25")
    release_claim(url, "mash-referrals.A manual__2026-11-25")
    assert claim_once(url, "mash-referrals.A manual__2026-11-25")


def test_claims_older_than_the_keeping_period_are_deleted_as_new_ones_are_made(tmp_path: Path):
    import sqlalchemy as sa

    from transfers.alert_claims import KEEP_DAYS, TABLE

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert claim_once(url, "review-due mash-referrals 2026-01-01", now=start)
    assert claim_once(url, "review-due mash-referrals 2026-01-02", now=start + timedelta(days=1))
    later = start + timedelta(days=KEEP_DAYS, hours=12)  # past the first's keeping period, not the second's
    assert claim_once(url, "review-due mash-referrals later", now=later)

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        kept = conn.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar_one()
    engine.dispose()
    assert kept == 2
    assert not claim_once(url, "review-due mash-referrals 2026-01-02", now=later)  # still claimed


def test_an_incident_goes_to_the_ig_contacts_of_the_party_that_saw_it_with_no_record_value(config):
    from transfers.alerts import incident_alert
    from transfers.ledger.records import Incident

    ref = config.flow("mash-referrals.A")
    incident = Incident(agreement=ref.agreement.id, flow=ref.key, logical_date=DAY, recipient="south-yorkshire-police",
                        what="host-key-mismatch", party="rotherham-childrens-services", where="sftp.syp.example:22",
                        evidence="ssh-ed25519 SHA256:offeredkey", detail="SFTP server sftp.syp.example:22: not pinned")
    alert = incident_alert(ref.agreement, incident)
    assert alert.kind == "incident"
    assert alert.addresses == ["information.governance@rotherham.example.org"]  # ours only, not the partner's IG
    assert "SECURITY INCIDENT host-key-mismatch" in alert.subject and "mash-referrals.A" in alert.subject
    for part in ("Logical date: 2026-11-25", "Partner concerned: south-yorkshire-police", "sftp.syp.example:22",
                 "SHA256:offeredkey", "ISP protocol 6.2", "carries no record values"):
        assert part in alert.body, part
    # Seen by the recipient: the recipient's IG is told, not the sender's.
    seen_there = Incident(agreement=ref.agreement.id, flow=ref.key, logical_date=DAY, what="signature-failed",
                          party="south-yorkshire-police", recipient="rotherham-childrens-services")
    assert incident_alert(ref.agreement, seen_there).addresses == ["data-protection@syp.example.police.uk"]
