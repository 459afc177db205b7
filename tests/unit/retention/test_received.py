"""At a recipient: received rows and quarantined deliveries destroyed on the controller's date, legal holds kept.

The police's deployment (TRANSFERS_PARTY south-yorkshire-police, receiving flow A) with a SQLite store
and a controlled clock. The two-party version, on PostgreSQL, is
``tests/integration/test_recipient_retention.py``.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.support.retention_places import never_connect, undeletable
from transfers.agreement import load_config
from transfers.ledger.records import Destroyed, PurgeFailed
from transfers.receipt import delivery_id
from transfers.receive.quarantine import quarantine
from transfers.receive.store import ReceivedStore
from transfers.retention import execute_purge, inventory, plan_purge
from transfers.retention.audit import retention_gaps
from transfers.retention.holds import add_hold, lift_hold
from transfers.settings import Settings

POLICE = "south-yorkshire-police"
FLOW = "mash-referrals.A"
DAY = date(2026, 11, 25)
DESTROY_BY = date(2032, 11, 25)  # the sample's controller period, P6Y, after the logical date
ID = delivery_id("mash-referrals", "A", DAY.isoformat(), POLICE)
BEFORE, AFTER = datetime(2032, 11, 24, 12, tzinfo=UTC), datetime(2032, 11, 25, 4, tzinfo=UTC)


@pytest.fixture
def police(tmp_path, config_dir):
    settings = Settings(home=tmp_path / "syp", config_dir=config_dir, party=POLICE)
    settings.home.mkdir()
    config = load_config(config_dir)
    ledger = settings.open_ledger()
    yield settings, config, ledger
    ledger.close()


def receive(settings: Settings, config, day: date = DAY, subjects: tuple[str, ...] = ("p1", "p2", "p3", "p1"),
            destroy_by: date = DESTROY_BY) -> str:
    fields = config.flow(FLOW).flow.shared_fields
    rows = [{f: (s if f == "nhs_number" else f"{f}-{n}") for f in fields} for n, s in enumerate(subjects)]
    ident = delivery_id("mash-referrals", "A", day.isoformat(), POLICE)
    with ReceivedStore(settings.store_database) as store:
        store.load(delivery_id=ident, manifest_sha256="ab" * 32, agreement="mash-referrals", agreement_version="1.1",
                   flow="A", logical_date=day, sender="rotherham-childrens-services",
                   received_at=datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC),
                   destroy_by=destroy_by, fields=fields, parts=[rows])
    return ident


def subjects_left(settings: Settings) -> list[str]:
    with ReceivedStore(settings.store_database) as store, store.engine.connect() as conn:
        return sorted(r[0] for r in conn.execute(sa.text("SELECT nhs_number FROM received_mash_referrals_a")))


def purge(settings, config, ledger, now: datetime, **kwargs):
    items = plan_purge(settings, config, ledger, now=now, **kwargs)
    return items, execute_purge(items, settings, config, ledger, never_connect, now=now)


def test_nothing_is_destroyed_before_destroy_by_and_everything_on_it_with_a_record(police):
    settings, config, ledger = police
    receive(settings, config)

    items, report = purge(settings, config, ledger, BEFORE)
    assert [i for i in items if i.place == "received"] == []
    assert subjects_left(settings) == ["p1", "p1", "p2", "p3"] and report.deleted == 0

    # Held past its date, it is a gap in `transfers ledger verify` until the purge destroys it.
    assert retention_gaps(settings, config, ledger, now=BEFORE) == []
    assert retention_gaps(settings, config, ledger, now=AFTER) == [
        f"received copy {ID} ({FLOW}) is still held, due for deletion on 2032-11-25 "
        f"(controller rotherham-childrens-services P6Y (manifest))"]

    items, report = purge(settings, config, ledger, AFTER)
    (item,) = [i for i in items if i.place == "received"]
    assert (item.path, item.detail, item.due) == (ID, "4 rows", datetime(2032, 11, 25, tzinfo=UTC))
    assert item.rule == "controller rotherham-childrens-services P6Y (manifest)"
    assert (report.deleted, report.failed, report.held) == (1, [], [])
    assert subjects_left(settings) == [] and retention_gaps(settings, config, ledger, now=AFTER) == []

    (done,) = ledger.records(Destroyed)
    assert (done.place, done.delivery_id, done.rows, done.complete, done.held_rows) == ("received", ID, 4, True, 0)
    assert (done.agreement, done.flow, done.logical_date, done.recipient) == ("mash-referrals", FLOW, DAY, POLICE)
    assert (done.sender, done.controller, done.destroy_by) == ("rotherham-childrens-services",) * 2 + ("2032-11-25",)
    assert done.manifest_sha256 == "ab" * 32 and done.path == "received_mash_referrals_a"
    assert done.as_of == AFTER and done.destroyed_at is not None and done.verified.startswith("absent after deletion")
    assert done.dedupe_key() == f"destroyed:{ID}" and report.entries == [done.seq]

    # Done: the next purge finds nothing, and records nothing again.
    items, report = purge(settings, config, ledger, AFTER + timedelta(days=1))
    assert [i for i in items if i.place == "received"] == [] and len(list(ledger.records(Destroyed))) == 1


def test_a_deployment_without_a_party_has_no_recipient_places(police):
    settings, config, ledger = police
    receive(settings, config)
    sender = settings.model_copy(update={"party": None})
    assert [i for i in inventory(sender, config, ledger) if i.place in ("received", "quarantine")] == []


def test_a_held_delivery_is_kept_and_listed_then_destroyed_once_the_hold_is_lifted(police):
    settings, config, ledger = police
    receive(settings, config)
    add_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason="case 2032/7", by="ig")

    items, report = purge(settings, config, ledger, AFTER)
    (item,) = [i for i in items if i.place == "received"]
    assert item.hold is not None and item.hold.endswith("by ig, " + f"{datetime.now(UTC):%Y-%m-%d}): case 2032/7")
    assert report.held == [f"received {FLOW} {ID}: {item.hold}"] and report.deleted == 0
    assert len(subjects_left(settings)) == 4 and list(ledger.records(Destroyed)) == []
    assert retention_gaps(settings, config, ledger, now=AFTER) == []  # held lawfully: not a gap

    lift_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason="case closed", by="ig")
    _items, report = purge(settings, config, ledger, AFTER)
    assert report.deleted == 1 and report.held == [] and subjects_left(settings) == []


def test_a_subject_hold_keeps_only_that_subjects_rows(police):
    settings, config, ledger = police
    receive(settings, config)
    add_hold(ledger, scope="subject", agreement="mash-referrals", target="p1", reason="case 2032/8", by="ig")

    items, report = purge(settings, config, ledger, AFTER)
    (item,) = [i for i in items if i.place == "received"]
    assert item.hold is None and item.detail.startswith("4 rows, 2 of them kept: legal hold on the subject")
    assert "p1" not in item.detail and "p1" not in " ".join(report.held)  # the pseudonym is not listed
    assert subjects_left(settings) == ["p1", "p1"]
    (partial,) = ledger.records(Destroyed)
    assert (partial.rows, partial.held_rows, partial.complete) == (2, 2, False)
    assert partial.dedupe_key() == f"destroyed:{ID}:partial:2"
    assert report.held == [f"received {FLOW} {ID}: 2 rows kept: {item.subject_hold}"]

    purge(settings, config, ledger, AFTER + timedelta(days=1))  # still held: nothing more, nothing recorded twice
    assert subjects_left(settings) == ["p1", "p1"] and len(list(ledger.records(Destroyed))) == 1

    lift_hold(ledger, scope="subject", agreement="mash-referrals", target="p1", reason="case closed", by="ig")
    purge(settings, config, ledger, AFTER + timedelta(days=2))
    assert subjects_left(settings) == []
    whole = list(ledger.records(Destroyed))[-1]
    assert (whole.rows, whole.complete, whole.dedupe_key()) == (4, True, f"destroyed:{ID}")


def test_a_destruction_the_ledger_could_not_record_is_recorded_by_the_next_purge(police, monkeypatch):
    from transfers.errors import LedgerUnavailable

    settings, config, ledger = police
    receive(settings, config)
    real = ledger.record

    def down(record):
        if isinstance(record, Destroyed):
            raise LedgerUnavailable("ledger: database unavailable (test)")
        return real(record)

    monkeypatch.setattr(ledger, "record", down)
    _items, report = purge(settings, config, ledger, AFTER)
    assert subjects_left(settings) == [] and list(ledger.records(Destroyed)) == []
    assert "destroyed and checked, but the ledger is unavailable" in report.failed[0]

    monkeypatch.setattr(ledger, "record", real)
    items, report = purge(settings, config, ledger, AFTER)
    (item,) = [i for i in items if i.place == "received"]
    assert item.unrecorded and item.detail.endswith("its ledger record is written now")
    (done,) = ledger.records(Destroyed)
    assert done.rows == 4 and done.complete and report.failed == []


def test_a_failed_destruction_is_recorded_and_stays_due(police, monkeypatch):
    from transfers.errors import DestructionFailed
    from transfers.receive.store import ReceivedStore as Store

    settings, config, ledger = police
    receive(settings, config)

    def refuse(self, delivery, **kwargs):
        raise DestructionFailed(f"store: delivery {delivery} could not be destroyed (test)")

    monkeypatch.setattr(Store, "destroy", refuse)
    _items, report = purge(settings, config, ledger, AFTER)
    assert report.failed == [f"received {FLOW} {ID}: store: delivery {ID} could not be destroyed (test); will retry "
                             f"on the next purge"]
    (failed,) = ledger.records(PurgeFailed)
    assert (failed.place, failed.path, failed.store) == ("received", ID, "database")
    monkeypatch.undo()
    assert [i.path for i in plan_purge(settings, config, ledger, now=AFTER) if i.place == "received"] == [ID]


def quarantined(settings: Settings, *, destroy_by: date | None, sender: str = "rotherham-childrens-services"):
    inbox = settings.home / "inbox-copy"
    inbox.mkdir(exist_ok=True)
    files = []
    for name in ("mash-referrals_A_2026-11-25.part-0001.csv.pgp", "mash-referrals_A_2026-11-25.manifest.json"):
        (inbox / name).write_bytes(os.urandom(64))
        files.append(inbox / name)
    return quarantine(files, settings.layout.quarantine_dir("mash-referrals", "A", DAY, sender), reason="part 1: "
                      "SHA-256 differs from the manifest", delivery_id=ID, manifest_sha256="cd" * 32,
                      destroy_by=destroy_by)


def test_a_quarantined_delivery_goes_on_the_manifests_date_with_its_files_listed(police):
    settings, config, ledger = police
    folder = quarantined(settings, destroy_by=DESTROY_BY)

    assert [i for i in plan_purge(settings, config, ledger, now=BEFORE) if i.place == "quarantine"] == []
    items, report = purge(settings, config, ledger, AFTER)
    (item,) = [i for i in items if i.place == "quarantine"]
    assert (item.detail, item.rule) == ("3 files", "controller rotherham-childrens-services P6Y (manifest)")
    assert not folder.exists() and not (settings.home / "quarantine" / "mash-referrals").exists()
    (done,) = ledger.records(Destroyed)
    assert (done.place, done.delivery_id, done.path, done.destroy_by) == ("quarantine", ID, str(folder), "2032-11-25")
    assert sorted(f.remote_path for f in done.files) == ["mash-referrals_A_2026-11-25.manifest.json",
                                                         "mash-referrals_A_2026-11-25.part-0001.csv.pgp",
                                                         "reason.json"]
    assert all(f.size and len(f.sha256 or "") == 64 for f in done.files)
    assert done.verified == "absent after deletion (stat: no such folder)" and report.deleted == 1


def test_a_quarantine_without_a_manifests_date_goes_after_the_flows_staging_period(police):
    settings, config, ledger = police
    folder = quarantined(settings, destroy_by=None)
    at = datetime.fromisoformat(json.loads((folder / "reason.json").read_text())["quarantined_at"])

    assert [i for i in plan_purge(settings, config, ledger, now=at + timedelta(days=6)) if i.place == "quarantine"] == []
    items, _report = purge(settings, config, ledger, at + timedelta(days=7))
    (item,) = [i for i in items if i.place == "quarantine"]
    assert item.rule == "retention.staging P7D after quarantine (no readable manifest)"
    assert not folder.exists()


def test_a_held_quarantine_is_kept_and_one_that_cannot_be_deleted_fails_and_stays(police):
    settings, config, ledger = police
    folder = quarantined(settings, destroy_by=DESTROY_BY)
    add_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason="case 2032/9", by="ig")
    _items, report = purge(settings, config, ledger, AFTER)
    assert folder.exists() and report.held[0].startswith(f"quarantine {FLOW} {ID}: legal hold on the delivery")

    lift_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason="closed", by="ig")
    with undeletable(folder):
        _items, report = purge(settings, config, ledger, AFTER)
    assert folder.exists() and len(report.failed) == 1 and list(ledger.records(Destroyed)) == []
    assert next(ledger.records(PurgeFailed)).place == "quarantine"
    _items, report = purge(settings, config, ledger, AFTER)
    assert not folder.exists() and report.deleted == 1


def test_purge_of_one_flow_leaves_the_recipients_places_of_others(police):
    settings, config, ledger = police
    receive(settings, config)
    items = plan_purge(settings, config, ledger, now=AFTER, only_flow="mash-referrals.B")
    assert [i for i in items if i.place == "received"] == []
