"""The IG report's destruction at recipients: each disclosure's destroy-by, certified destruction or overdue,
in the HTML (overdue highlighted, totals) and the CSVs. Built from a real (SQLite) ledger."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

import pytest

from transfers.agreement import load_config
from transfers.ledger import Ledger
from transfers.ledger.records import DestructionCertified, Disclosure, Incident
from transfers.receipt import delivery_id
from transfers.reports.ig import build, render_csv, render_html
from transfers.settings import PROJECT_ROOT, Settings

SYP = "south-yorkshire-police"
OLD, NEWER, RECENT = date(2026, 5, 1), date(2026, 6, 1), date(2026, 11, 20)
NOW = datetime(2032, 7, 15, 9, 0, tzinfo=UTC)  # OLD's destroy-by + 75 days, NEWER's + 44: past 30 days' grace


@pytest.fixture
def doc(tmp_path):
    config = load_config(PROJECT_ROOT / "config", today=RECENT)
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", destruction_grace_days=30)
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        for day in (OLD, NEWER, RECENT):
            ledger.record(Disclosure(agreement="mash-referrals", flow="mash-referrals.A", logical_date=day,
                                     recipient=SYP, rows=12, at=datetime.combine(day, datetime.min.time(), UTC)))
        ledger.record(DestructionCertified(
            agreement="mash-referrals", flow="mash-referrals.A", logical_date=OLD, recipient=SYP,
            delivery_id=delivery_id("mash-referrals", "A", OLD.isoformat(), SYP), certificate_sha256="ef" * 32,
            rows=12, destroyed_at="2032-05-01T03:00:00+00:00", signer_fingerprint="F" * 40,
            rule="controller rotherham-childrens-services P6Y"))
        ledger.record(Incident(agreement="mash-referrals", flow="mash-referrals.A", logical_date=RECENT, recipient=SYP,
                               what="host-key-mismatch", party="rotherham-childrens-services",
                               where="sftp.syp.example:22", evidence="ssh-ed25519 SHA256:offered",
                               detail="host key not pinned", notified=False, notice="not sent: no SMTP connection",
                               at=datetime(2026, 11, 20, 2, 0, tzinfo=UTC)))
        ledger.record(Incident(agreement="mash-referrals", flow="mash-referrals.A", logical_date=OLD, recipient=SYP,
                               what="signature-failed", party="rotherham-childrens-services", evidence="sha256 ab",
                               at=datetime(2025, 5, 1, 2, 0, tzinfo=UTC)))  # before the period: not listed
        yield build(settings, config, ledger, date(2026, 1, 1), date(2026, 12, 31), now=NOW)


def test_disclosures_past_destroy_by_are_destroyed_or_overdue_and_counted(doc):
    by_date = {d["logical_date"]: d for d in doc["destruction"]}
    assert set(by_date) == {OLD.isoformat(), NEWER.isoformat()}  # RECENT's destroy-by is still to come
    assert by_date[OLD.isoformat()]["status"] == "destroyed"
    assert by_date[OLD.isoformat()]["certificate_sha256"] == "ef" * 32
    assert (by_date[NEWER.isoformat()]["status"], by_date[NEWER.isoformat()]["destroy_by"]) == ("overdue",
                                                                                                "2032-06-01")
    assert doc["destruction"][0]["status"] == "overdue"  # overdue first
    assert (doc["totals"]["destroyed_at_recipients"], doc["totals"]["destruction_overdue"]) == (1, 1)
    receipts = {r["logical_date"]: r for r in doc["receipts"]}
    assert (receipts[RECENT.isoformat()]["destroy_by"], receipts[RECENT.isoformat()]["destruction"]) == (
        "2032-11-20", "not-due")


def test_the_disclosures_section_opens_with_records_disclosed_per_month_as_a_chart(doc):
    html = render_html(doc)
    section = html[html.index('<section id="disclosures">'):html.index('<section id="receipts">')]
    [svg] = re.findall(r'<svg class="chart" id="disclosures-1".*?</svg>', section, re.S)
    flow = "mash-referrals.A to South Yorkshire Police"
    months = "; ".join(f"2026-{m:02d}: {12 if m in (5, 6, 11) else 0}" for m in range(1, 13))
    assert f"<desc id=\"disclosures-1-desc\">Records disclosed per month: {flow}: {months}.</desc>" in svg
    assert f"<figcaption>{flow}: 36 records disclosed</figcaption>" in section
    assert section.index("<svg") < section.index("<table")  # the picture first, the exact table below it
    assert "<script" not in svg and "http" not in svg


def test_the_html_highlights_overdue_and_shows_the_certificate_hash(doc):
    html = render_html(doc)
    section = html[html.index('<section id="destruction">'):html.index('<section id="without-consent">')]
    [overdue] = re.findall(r'<tr class="destruction overdue overdue">(.*?)</tr>', section, re.S)
    assert NEWER.isoformat() in overdue and "OVERDUE" in overdue
    [destroyed] = re.findall(r'<tr class="destruction destroyed">(.*?)</tr>', section, re.S)
    assert "destroyed at recipient" in destroyed and "ef" * 32 in destroyed
    assert re.search(r'id="total-destruction-overdue">1<', html) and re.search(
        r'id="total-destroyed-at-recipients">1<', html)
    assert "30 days after its destroy-by" in section


def test_the_csvs_carry_destroy_by_and_the_certificate(doc):
    rows = list(csv.DictReader(io.StringIO(render_csv(doc, "destruction"))))
    assert [(r["logical_date"], r["status"], r["certificate_sha256"]) for r in rows] == [
        (NEWER.isoformat(), "overdue", ""), (OLD.isoformat(), "destroyed", "ef" * 32)]
    receipts = list(csv.DictReader(io.StringIO(render_csv(doc, "receipts"))))
    assert {r["logical_date"]: r["destruction"] for r in receipts} == {
        OLD.isoformat(): "destroyed", NEWER.isoformat(): "overdue", RECENT.isoformat(): "not-due"}


def test_incidents_of_the_period_are_listed_highlighted_and_counted(doc):
    assert [(i["what"], i["partner"], i["evidence"]) for i in doc["incidents"]] == [
        ("host-key-mismatch", SYP, "ssh-ed25519 SHA256:offered")]
    assert (doc["totals"]["incidents"], doc["totals"]["incidents_not_notified"]) == (1, 1)
    html = render_html(doc)
    section = html[html.index('<section id="incidents">'):html.index('<section id="disclosures">')]
    [row] = re.findall(r'<tr class="incident overdue">(.*?)</tr>', section, re.S)
    assert "host-key-mismatch" in row and "sftp.syp.example:22" in row and "NO: not sent" in row
    assert re.search(r'id="total-incidents">1<', html) and 'class="n overdue" id="total-incidents"' in html
    rows = list(csv.DictReader(io.StringIO(render_csv(doc, "incidents"))))
    assert [(r["what"], r["where"], r["notified"]) for r in rows] == [
        ("host-key-mismatch", "sftp.syp.example:22", "False")]
