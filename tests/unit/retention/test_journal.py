"""A deletion the ledger cannot record is kept in the journal on disk and recorded on the next purge."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from tests.support.retention_places import DS, copies, never_connect, undeletable
from transfers.retention import execute_purge, plan_purge
from transfers.retention.audit import retention_gaps


def test_a_deletion_the_ledger_cannot_record_is_journalled_and_recorded_on_the_next_purge(world):
    from transfers.retention.journal import journal_path

    settings, config, ledger = world
    files = copies(settings.home)
    now = datetime.now(UTC) + timedelta(days=8)
    items = [i for i in plan_purge(settings, config, ledger, now=now) if i.place == "outbox"]
    database = settings.home / "ledger.db"

    with undeletable(database):  # the ledger refuses writes (read-only database file)
        report = execute_purge(items, settings, config, ledger, never_connect, now=now)
        assert not files["outbox"].exists()  # deleted and checked...
        assert "the record is kept in" in report.failed[0] and "next purge" in report.failed[0]
        assert journal_path(settings.home).exists()  # ...and its record is safe on disk
    assert list(ledger.entries(kind="purge")) == []
    assert any("not yet recorded" in g for g in retention_gaps(settings, config, ledger, now=now))

    execute_purge([], settings, config, ledger, never_connect, now=now)

    purges = list(ledger.entries(kind="purge"))
    assert [e.payload["path"] for e in purges] == [str(files["outbox"])]
    assert purges[0].payload["sha256"] and purges[0].logical_date == date.fromisoformat(DS)
    assert not journal_path(settings.home).exists()
    assert not any("not yet recorded" in g for g in retention_gaps(settings, config, ledger, now=now))
