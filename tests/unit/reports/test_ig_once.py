"""The IG report reads the period's ledger records once, and says exactly what it said before it did.

A real (SQLite) ledger with two flows (and one no longer in the config), disclosures before, in and after
the period over several months, receipts acknowledged, rejected and refused (some recorded after the
period), destruction certificates and refusals, privacy results (a retried night), notices with their
confirmations, shares without consent, purges, a received delivery destroyed, a legal hold, key events and
an incident. ``tests/fixtures/ig-report-snapshot.json`` is the report this ledger gave before the single read (its data,
every CSV and the HTML's SHA-256, generated from the old code path at commit 8197231): the new path must
give it byte for byte.

Reads are counted by wrapping ``Ledger.records`` (the real method still runs): the report's own modules
read three disjoint slices (before, the period, after), the period once; the flow page's statuses read one
flow's records only.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from transfers.agreement import load_config
from transfers.ledger import Ledger
from transfers.ledger.records import (
    Acknowledgement,
    CertificateRefused,
    Destroyed,
    DestructionCertified,
    Disclosure,
    Incident,
    LegalHold,
    Notice,
    NoticeConfirmationRefused,
    NoticeConfirmed,
    PrivacyResult,
    PseudonymKey,
    Purged,
    PurgeFailed,
    ReceiptRefused,
    SharedWithoutConsent,
)
from transfers.receipt import delivery_id
from transfers.reports.ig import _CSV, build, render_csv, render_html
from transfers.settings import PROJECT_ROOT, Settings

SNAPSHOT = Path(__file__).resolve().parents[2] / "fixtures" / "ig-report-snapshot.json"
AG, A, B, GONE = "mash-referrals", "mash-referrals.A", "mash-referrals.B", "mash-referrals.Z"
SYP, CS = "south-yorkshire-police", "rotherham-childrens-services"
START, END = date(2026, 6, 1), date(2026, 9, 30)
NOW = datetime(2032, 8, 20, 9, 0, tzinfo=UTC)  # past the destroy-by of May to July 2026's disclosures


def _at(day: date, hour: int = 2) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _did(flow: str, day: date, partner: str) -> str:
    return delivery_id(AG, flow.partition(".")[2], day.isoformat(), partner)


def _fill(ledger: Ledger) -> None:
    days = [date(2026, 5, 20), date(2026, 5, 31), date(2026, 6, 1), date(2026, 6, 15), date(2026, 7, 2),
            date(2026, 7, 30), date(2026, 8, 10), date(2026, 9, 30), date(2026, 10, 1), date(2026, 11, 5)]
    for n, day in enumerate(days):
        for flow, partner in ((A, SYP), (B, CS)):
            ledger.record(PrivacyResult(agreement=AG, flow=flow, logical_date=day, excluded={"withdrawn": n % 3},
                                        basis="consent", rows_screened=20 + n, rows_sent=20 + n - n % 3,
                                        at=_at(day, 1)))
            if n == 4:  # a retried night: the later screening is the one that counts
                ledger.record(PrivacyResult(agreement=AG, flow=flow, logical_date=day, excluded={"opted_out": 2},
                                            basis="consent", rows_screened=30, rows_sent=28, at=_at(day, 1)))
            ledger.record(Disclosure(agreement=AG, flow=flow, logical_date=day, recipient=partner, rows=10 + n,
                                     purposes=("safeguarding",), legal_basis=("Children Act 1989 s.47",),
                                     fields=("referral_id", "risk_level"), at=_at(day)))
        if n % 3 == 0:  # acknowledged the next day (day 7's after the period)
            ledger.record(Acknowledgement(agreement=AG, flow=A, logical_date=day, recipient=SYP,
                                          delivery_id=_did(A, day, SYP), status="acknowledged", rows=10 + n,
                                          receipt_sha256=f"{n:02d}" * 32, signer_fingerprint="A" * 40,
                                          at=_at(day + timedelta(days=1), 3)))
        elif n % 3 == 1:
            ledger.record(ReceiptRefused(agreement=AG, flow=A, logical_date=day, recipient=SYP,
                                         delivery_id=_did(A, day, SYP), reason="signature did not verify",
                                         at=_at(day + timedelta(days=2), 3)))
            if n == 4:
                ledger.record(Acknowledgement(agreement=AG, flow=A, logical_date=day, recipient=SYP,
                                              delivery_id=_did(A, day, SYP), status="rejected",
                                              reason="row count differs", at=_at(day + timedelta(days=3))))
    ledger.record(Disclosure(agreement=AG, flow=GONE, logical_date=date(2026, 6, 3), recipient=SYP, rows=5,
                             at=_at(date(2026, 6, 3))))
    # Destruction certificates recorded long after the period (2032), one refused first.
    for day in (date(2026, 5, 20), date(2026, 6, 15)):
        did = _did(A, day, SYP)
        ledger.record(CertificateRefused(agreement=AG, flow=A, logical_date=day, recipient=SYP, delivery_id=did,
                                         reason="signature did not verify", at=_at(date(2032, 6, 1))))
        ledger.record(DestructionCertified(agreement=AG, flow=A, logical_date=day, recipient=SYP, delivery_id=did,
                                           certificate_sha256="ce" * 32, rows=10,
                                           destroyed_at="2032-06-02T03:00:00+00:00", signer_fingerprint="F" * 40,
                                           rule="controller rotherham-childrens-services P6Y",
                                           at=_at(date(2032, 6, 2))))
    for n, (day, kind) in enumerate(((date(2026, 5, 25), "withdrawal"), (date(2026, 6, 20), "withdrawal"),
                                     (date(2026, 7, 21), "correction"), (date(2026, 8, 22), "correction"),
                                     (date(2026, 10, 2), "withdrawal"))):
        ledger.record(Notice(agreement=AG, flow=A, recipient=SYP, notice=kind, lookup=f"l{n}", occasion=f"o{n}",
                             fields=("risk_level",) if kind == "correction" else (), reference=f"ref{n}",
                             at=_at(day)))
    ledger.record(NoticeConfirmed(agreement=AG, flow=A, recipient=SYP, reference="ref1", notice="withdrawal", rows=2,
                                  at=_at(date(2026, 6, 21))))
    ledger.record(NoticeConfirmed(agreement=AG, flow=A, recipient=SYP, reference="ref3", notice="correction",
                                  rows=1, at=_at(date(2026, 10, 9))))  # after the period
    ledger.record(NoticeConfirmationRefused(agreement=AG, flow=A, recipient=SYP, reference="ref2",
                                            reason="signature did not verify", at=_at(date(2026, 7, 22))))
    for day in (date(2026, 5, 2), date(2026, 7, 3)):
        ledger.record(SharedWithoutConsent(agreement=AG, flow=B, logical_date=day, legal_basis="Children Act 1989",
                                           ground="safeguarding", justification="risk of harm", rows=3, at=_at(day)))
    for day in (date(2026, 5, 3), date(2026, 7, 4)):
        ledger.record(PseudonymKey(agreement=AG, flow=A, logical_date=day, domain=AG, key_id=f"k-{day:%m}",
                                   key_fingerprint="a" * 16, event="first-use" if day.month == 5 else "rotation",
                                   at=_at(day)))
        ledger.record(Purged(agreement=AG, flow=A, logical_date=day, place="archive", path=f"a/{day}.pgp",
                             key=f"purge-{day}", size=10, sha256="bb" * 32, created=_at(day), due=_at(day),
                             deleted_at=_at(day, 5), rule="retention.archive P6M", verified="gone",
                             at=_at(day, 5)))
        ledger.record(PurgeFailed(agreement=AG, flow=A, logical_date=day, place="remote", path=f"r/{day}.pgp",
                                  due=_at(day), attempted_at=_at(day, 6), error="server down", at=_at(day, 6)))
        ledger.record(Destroyed(agreement=AG, flow=B, logical_date=day, place="received",
                                delivery_id=_did(B, day, CS), sender="rotherham-nhs-ft", rows=4,
                                destroy_by="2032-07-01", destroyed_at=_at(day, 7), rule="controller P6Y",
                                verified="table empty", at=_at(day, 7)))
        ledger.record(Incident(agreement=AG, flow=A, logical_date=day, recipient=SYP, what="host-key-mismatch",
                               party=CS, where="sftp.syp.example:22", evidence="ssh-ed25519 SHA256:offered",
                               detail="host key not pinned", notified=day.month == 7, at=_at(day, 8)))
    ledger.record(LegalHold(agreement=AG, action="add", scope="delivery", target=_did(A, date(2026, 6, 1), SYP),
                            reason="complaint", by="ig-officer", at=_at(date(2026, 6, 2))))
    ledger.record(LegalHold(agreement=AG, action="add", scope="delivery", target=_did(A, date(2026, 7, 2), SYP),
                            reason="audit", by="ig-officer", at=_at(date(2026, 7, 5))))
    ledger.record(LegalHold(agreement=AG, action="lift", scope="delivery", target=_did(A, date(2026, 7, 2), SYP),
                            by="ig-officer", at=_at(date(2026, 10, 5))))  # lifted after the period
    # Placed again after the lift (a later seq) with a time inside the period: the later seq stands, so it is held.
    ledger.record(LegalHold(agreement=AG, action="add", scope="delivery", target=_did(A, date(2026, 7, 2), SYP),
                            reason="audit reopened", by="ig-officer", at=_at(date(2026, 9, 1))))


def _outputs(doc: dict) -> dict:
    """The report as files say it: its data (as the JSON a caller would dump), each CSV, the HTML's digest."""
    return {"doc": json.loads(json.dumps(doc, sort_keys=True, default=str)),
            "csv": {section: render_csv(doc, section) for section in _CSV},
            "html_sha256": hashlib.sha256(render_html(doc).encode()).hexdigest()}


@pytest.fixture
def world(tmp_path):
    config = load_config(PROJECT_ROOT / "config", today=START)
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config", destruction_grace_days=30)
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        _fill(ledger)
        yield settings, config, ledger


@pytest.fixture
def reads(monkeypatch):
    """Every ``Ledger.records`` call: (calling module, kinds, flow, since, until); the real method still runs."""
    calls: list[tuple[str, frozenset[str], str | None, datetime | None, datetime | None]] = []
    real = Ledger.records

    def counted(self, *classes, agreement=None, flow=None, since=None, until=None):
        caller = sys._getframe(1).f_globals.get("__name__", "")
        calls.append((caller, frozenset(c.KIND for c in classes), flow, since, until))
        return real(self, *classes, agreement=agreement, flow=flow, since=since, until=until)

    monkeypatch.setattr(Ledger, "records", counted)
    return calls


def test_the_report_is_what_it_was_before_byte_for_byte(world):
    settings, config, ledger = world
    got = _outputs(build(settings, config, ledger, START, END, now=NOW))
    if not SNAPSHOT.exists():  # pragma: no cover - how the snapshot was made, from the old code path
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(SNAPSHOT.read_text())
    assert got["csv"] == want["csv"]
    assert got["doc"] == want["doc"]
    assert got["html_sha256"] == want["html_sha256"]


def test_the_report_reads_the_period_once_and_beyond_it_only_what_judging_it_needs(world, reads):
    settings, config, ledger = world
    since, until = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC)

    build(settings, config, ledger, START, END, now=NOW)

    sliced = [(kinds, flow, s, u) for _, kinds, flow, s, u in reads if s is not None or u is not None]
    [period] = [k for k, _, s, u in sliced if (s, u) == (since, until)]
    shown = (Disclosure, SharedWithoutConsent, Purged, PurgeFailed, Destroyed, Incident, PrivacyResult, Notice,
             PseudonymKey)  # what ig.build and ig_evidence.evidence list for the period
    assert {c.KIND for c in shown} <= period
    beyond = {(s, u): k for k, _, s, u in sliced if (s, u) != (since, until)}
    assert set(beyond) == {(None, since), (until, None)}  # before and after: disjoint from the period
    assert beyond[(None, since)] == beyond[(until, None)] < period  # only what judging the period needs
    assert all(flow is None for _, flow, _, _ in sliced)
    # Nothing else in the report's own modules reads the ledger again (the copies held now are listed by the
    # retention package, and the chain check uses Ledger.verify, not records).
    others = [c for c in reads if c[3] is None and c[4] is None and not c[0].startswith("transfers.retention.")]
    assert others == []


def test_the_flow_page_statuses_read_only_that_flows_records_once(world, reads):
    settings, config, ledger = world
    from transfers.reports.destruction import destruction_statuses
    from transfers.reports.reading import flow_statuses
    from transfers.reports.receipts import receipt_statuses

    receipts, destruction = flow_statuses(ledger, config, A, grace_days=30, now=NOW)

    assert [(flow, since, until) for _, _, flow, since, until in reads] == [(A, None, None)]
    assert {r.flow for r in receipts} == {d.flow for d in destruction} == {A}
    # The same statuses as the functions the CLI uses, each of which reads the flow on its own.
    assert receipts == receipt_statuses(ledger, config, flow=A, now=NOW)
    assert destruction == destruction_statuses(ledger, config, grace_days=30, flow=A, now=NOW)
    assert len(receipts) == 10 and {d.status for d in destruction} >= {"destroyed", "overdue", "not-due"}
