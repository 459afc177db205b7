"""Retention per flow and place: a purge of local places with a controlled clock.

Remote (real sshd) and S3 (a local S3 endpoint) places are in
``tests/integration/test_retention.py``; here every place is a real directory. The agreement's periods are
checked in ``tests/unit/agreement/``, pruning emptied folders in ``test_local.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.config_edits import edit
from tests.support.retention_places import DS, copies, never_connect, undeletable
from transfers.errors import ConfigError
from transfers.retention import execute_purge, inventory, plan_purge
from transfers.retention.audit import retention_gaps
from transfers.retention.running import clear_running, mark_running


def test_each_local_place_is_purged_when_its_own_period_ends_and_kept_before(world):
    settings, config, ledger = world
    files = copies(settings.home)
    start = datetime.now(UTC)

    # Sample periods: staging P7D (outbox and runs), logs P30D, reports and notices P90D, archive P6M.
    for days, gone in [(1, set()), (8, {"outbox", "runs"}), (31, {"outbox", "runs", "logs"}),
                       (91, {"outbox", "runs", "logs", "reports", "notices"}),
                       (190, {"outbox", "runs", "logs", "reports", "notices", "archive"})]:
        now = start + timedelta(days=days)
        items = plan_purge(settings, config, ledger, now=now)
        report = execute_purge(items, settings, config, ledger, never_connect, now=now)
        assert report.failed == [] and report.held == []
        assert {p for p, f in files.items() if not f.exists()} == gone, f"after {days} days"

    purges = list(ledger.entries(kind="purge"))
    assert sorted(e.payload["place"] for e in purges) == sorted(files)
    for entry in purges:
        p = entry.payload
        assert p["path"] == str(files[p["place"]])
        assert p["size"] == len("ciphertext")
        assert len(p["sha256"]) == 64
        assert datetime.fromisoformat(p["due"]) <= datetime.fromisoformat(p["as_of"])
        assert datetime.fromisoformat(p["created"]) < datetime.fromisoformat(p["due"])
        assert p["rule"].startswith("retention.")
        assert p["verified"].startswith("absent after deletion")
    assert not (settings.home / "outbox" / "mash-referrals").exists()  # emptied folders are pruned too


def test_only_the_flow_asked_for_is_purged(world):
    settings, config, ledger = world
    a, b = copies(settings.home, "A"), copies(settings.home, "B")
    now = datetime.now(UTC) + timedelta(days=8)

    items = plan_purge(settings, config, ledger, now=now, only_flow="mash-referrals.B")
    execute_purge(items, settings, config, ledger, never_connect, now=now)

    assert a["outbox"].exists() and not b["outbox"].exists()


def test_a_run_in_progress_keeps_its_copies_until_it_ends(world):
    settings, config, ledger = world
    files = copies(settings.home)
    other = copies(settings.home, ds="2026-11-19")
    mark_running(settings.home, "mash-referrals", "A", DS)
    now = datetime.now(UTC) + timedelta(days=8)

    report = execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger,
                           never_connect, now=now)

    assert files["outbox"].exists() and files["runs"].exists()
    assert not other["outbox"].exists()  # another date of the same flow is not held
    assert any(DS in h and "in progress" in h for h in report.held)
    clear_running(settings.home, "mash-referrals", "A", DS)
    execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger, never_connect, now=now)
    assert not files["outbox"].exists()


def test_a_deletion_that_fails_is_recorded_reported_and_retried_on_the_next_run(world):
    settings, config, ledger = world
    files = copies(settings.home)
    now = datetime.now(UTC) + timedelta(days=8)

    with undeletable(files["outbox"].parent):
        report = execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger,
                               never_connect, now=now)
        assert files["outbox"].exists()
        assert len(report.failed) == 1 and str(files["outbox"]) in report.failed[0]
        assert "will retry on the next purge" in report.failed[0]
        assert not files["runs"].exists()  # one failure does not stop the others
        failed = list(ledger.entries(kind="purge-failed"))
        assert [e.payload["path"] for e in failed] == [str(files["outbox"])]
        # Still due, so the next plan lists it again: nothing is silently skipped.
        assert str(files["outbox"]) in [i.path for i in plan_purge(settings, config, ledger, now=now)]
        assert any(str(files["outbox"]) in g for g in retention_gaps(settings, config, ledger, now=now))

    retried = execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger,
                            never_connect, now=now)
    assert retried.failed == [] and retried.deleted == 1
    assert not files["outbox"].exists()
    assert retention_gaps(settings, config, ledger, now=now) == []


def test_inventory_lists_what_is_held_with_due_dates(world):
    settings, config, ledger = world
    files = copies(settings.home)

    held = {i.place: i for i in inventory(settings, config, ledger)}

    assert set(held) == set(files)
    assert (held["archive"].due - held["archive"].created).days in range(181, 185)  # P6M
    assert (held["outbox"].due - held["outbox"].created) == timedelta(days=7)
    assert held["outbox"].logical_date == DS


def test_an_unknown_flow_is_an_error_not_nothing_due(world):
    settings, config, ledger = world
    with pytest.raises(ConfigError, match="no flow 'mash-referrals.Z'"):
        plan_purge(settings, config, ledger, only_flow="mash-referrals.Z")


def test_a_purge_with_an_archive_dir_typed_outside_home_stops_and_an_empty_folder_there_survives(
        world, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from transfers.cli import app

    settings, _config, _ledger = world
    copies(settings.home)
    shared = tmp_path / "shared"  # beside home, where "../shared" points
    (shared / "empty").mkdir(parents=True)
    edit(settings.config_dir, lambda d: d["flows"][1]["retention"].update(archive={"period": "P6M",
                                                                                    "dir": "../shared"}))
    monkeypatch.setenv("TRANSFERS_HOME", str(settings.home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(settings.config_dir))

    result = CliRunner().invoke(app, ["purge"])

    assert result.exit_code == 2, result.output
    assert "flows[1].retention.archive.dir" in result.output
    assert (shared / "empty").is_dir()


def test_purge_now_records_the_real_deletion_time_never_the_pretend_one(world, monkeypatch):
    from typer.testing import CliRunner

    from transfers.cli import app

    settings, _config, ledger = world
    files = copies(settings.home)
    monkeypatch.setenv("TRANSFERS_HOME", str(settings.home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(settings.config_dir))
    pretend = (datetime.now(UTC) + timedelta(days=400)).date()
    before = datetime.now(UTC).replace(microsecond=0)

    with undeletable(files["logs"].parent):  # one deletion fails: its attempt is dated truly too
        result = CliRunner().invoke(app, ["purge", "--as-of", pretend.isoformat()])
    after = datetime.now(UTC)

    assert result.exit_code == 1, result.output
    purges = list(ledger.entries(kind="purge"))
    failed = list(ledger.entries(kind="purge-failed"))
    assert len(purges) == len(files) - 1 and len(failed) == 1
    for entry in purges + failed:
        p = entry.payload
        when = datetime.fromisoformat(p.get("deleted_at") or p["attempted_at"])
        assert before <= when <= after, (p, before, after)
        assert before <= entry.at <= after
        assert datetime.fromisoformat(p["as_of"]).date() == pretend
        assert datetime.fromisoformat(p["due"]) <= datetime.fromisoformat(p["as_of"])
    assert f"judged as on {pretend}" in result.output and "real time" in result.output
