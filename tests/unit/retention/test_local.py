"""Pruning the folders a purge emptied: only the flow's own, never a place's root, home, or through a symlink."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support.retention_places import copies, never_connect
from transfers.retention import execute_purge, plan_purge


def test_purge_prunes_only_the_flows_own_empty_folders_never_a_sibling_the_place_root_or_home(world, tmp_path):
    settings, config, ledger = world
    files = copies(settings.home)
    home = settings.home
    outside = tmp_path / "empty-beside-home"  # a sibling of home: outside every place
    beside_place = home / "archive" / "someone-elses"  # in the archive root, but no flow's place
    beside_home = home / "empty-in-home"
    other_agreement = home / "outbox" / "retired-agreement" / "A"  # not a flow of this config
    for folder in (outside, beside_place, beside_home, other_agreement):
        folder.mkdir(parents=True)
    now = datetime.now(UTC) + timedelta(days=400)  # everything local is due

    report = execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger,
                           never_connect, now=now)

    assert report.failed == [] and not any(f.exists() for f in files.values())
    assert not (home / "archive" / "mash-referrals").exists()  # the flow's own emptied folders go
    assert all(f.is_dir() for f in (outside, beside_place, beside_home, other_agreement))
    for folder in ("outbox", "runs", "archive", "reports", "notices", "logs"):
        assert (home / folder).is_dir(), folder  # a place's root is never removed


def test_prune_never_leaves_home_or_follows_a_symlink(tmp_path):
    from transfers.retention.local import prune_empty_dirs

    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (elsewhere / "empty").mkdir(parents=True)
    (home / "archive" / "ag").mkdir(parents=True)
    (home / "archive" / "ag" / "A").symlink_to(elsewhere, target_is_directory=True)

    prune_empty_dirs(tmp_path / "ag" / "A", tmp_path, home)  # a root outside home: refused
    prune_empty_dirs(home / "ag" / "A", home, home)  # home itself as a root: refused
    prune_empty_dirs(home / "archive" / "ag" / "A", home / "archive", home)  # the place is a symlink

    assert (elsewhere / "empty").is_dir() and (home / "archive" / "ag" / "A").is_symlink()
