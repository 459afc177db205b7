"""Retention per flow and place: the agreement's periods, and a purge of local places with a controlled clock.

Remote (real sshd) and S3 (a local S3 endpoint) places are in
``tests/integration/test_retention.py``; here every place is a real directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_part
from transfers.agreement import load_config, retention_periods
from transfers.errors import ConfigError
from transfers.retention import execute_purge, inventory, plan_purge
from transfers.retention.audit import retention_gaps
from transfers.retention.running import clear_running, mark_running
from transfers.settings import PROJECT_ROOT, Settings

SAMPLE = "mash-referrals.yaml"
DS = "2026-11-20"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", target)
    return target


def edit(config_dir: Path, change) -> Path:
    path = config_dir / "agreements" / SAMPLE
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def problems(config_dir: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    return str(caught.value)


# --------------------------------------------------------------------------- the agreement's periods


def test_the_sample_names_a_period_for_every_place(config_dir):
    config = load_config(config_dir)
    for ref in config.flows():
        periods = retention_periods(ref.flow)
        assert set(periods) == {"staging", "archive", "remote", "reports", "notices", "logs"}
        assert ref.flow.retention.remote.sender_may_remove is True


@pytest.mark.parametrize(
    ("change", "key_path", "message"),
    [
        (lambda r: r.update(remote={"sender_may_remove": True}), "flows[0].retention.remote.period",
         "required key is missing"),
        (lambda r: r.update(archive={"dir": "archive"}), "flows[0].retention.archive.period",
         "required key is missing"),
        (lambda r: r.pop("staging"), "flows[0].retention.staging", "required key is missing"),
        (lambda r: r.update(notices="90 days"), "flows[0].retention.notices", "'90 days'"),
        (lambda r: r.update(logs="P0D"), "flows[0].retention.logs", "zero duration"),
        (lambda r: r.update(archive={"period": "P1Y", "dir": "a", "bucket": "isp-archive", "connection": "s3"}),
         "flows[0].retention.archive", "exactly one"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "isp-archive"}), "flows[0].retention.archive",
         "needs 'connection'"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "No_Such", "connection": "s3"}),
         "flows[0].retention.archive", "'No_Such' is not a valid S3 bucket name"),
        (lambda r: r.update(archive={"period": "P1Y", "bucket": "isp-archive", "connection": "s3",
                                     "prefix": "../up"}), "flows[0].retention.archive", "'..'"),
        (lambda r: r.update(remote={"period": "P14D", "sender_may_remove": True, "when": 1}),
         "flows[0].retention.remote.when", "unknown key"),
    ],
)
def test_a_place_without_a_valid_period_or_store_names_the_file_and_key(config_dir, change, key_path, message):
    path = edit(config_dir, lambda d: change(d["flows"][0]["retention"]))

    text = problems(config_dir)
    assert f"{path}: {key_path}: " in text, text
    assert message in text.split(f"{path}: {key_path}: ", 1)[1].splitlines()[0]


def test_a_bare_remote_period_does_not_let_the_sender_delete_on_the_partners_server(config_dir):
    edit(config_dir, lambda d: d["flows"][0]["retention"].update(remote="P14D"))

    flow = load_config(config_dir).flow("mash-referrals.A").flow
    assert flow.retention.remote.period.text == "P14D"
    assert flow.retention.remote.sender_may_remove is False


# --------------------------------------------------------------------------- purging local places


@pytest.fixture
def world(tmp_path, config_dir):
    """Settings on a fresh home, the sample config and an empty SQLite ledger."""
    settings = Settings(home=tmp_path / "home", config_dir=config_dir)
    config = load_config(config_dir)
    ledger = settings.open_ledger()
    yield settings, config, ledger
    ledger.close()


def put(path: Path, text: str = "ciphertext") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copies(home: Path, flow: str = "A", ds: str = DS) -> dict[str, Path]:
    """One file in every local place of one (flow, date)."""
    base = Path("mash-referrals") / flow
    return {
        "outbox": put(home / "outbox" / base / ds / "south-yorkshire-police" / f"mash-referrals_{flow}_{ds}.csv.pgp"),
        "runs": put(home / "runs" / base / ds / "extract" / "part-0001.bin"),
        "archive": put(home / "archive" / base / ds / "south-yorkshire-police" / f"mash-referrals_{flow}_{ds}.csv.pgp"),
        "reports": put(home / "reports" / base / f"quality_{ds}.html"),
        "notices": put(home / "notices" / base / f"rectification_{ds}.csv"),
        "logs": put(home / "logs" / base / f"{ds}.log"),
    }


def never_connect(conn_id: str):
    raise AssertionError(f"no connection should be needed for local places ({conn_id})")


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


@contextlib.contextmanager
def undeletable(folder: Path):
    """Make ``folder``'s files impossible to delete: chmod for a normal user; root ignores
    permissions, so as root the directory is made immutable (``chattr +i``)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    made = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    require_part("chattr +i (a directory even root cannot delete from)", bool(made), "e2fsprogs on ext4/xfs")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


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


def test_mark_running_is_idempotent_and_keeps_the_first_start(tmp_path):
    first = mark_running(tmp_path, "a", "A", DS).read_text()
    assert mark_running(tmp_path, "a", "A", DS).read_text() == first
    clear_running(tmp_path, "a", "A", DS)
    clear_running(tmp_path, "a", "A", DS)  # clearing twice is harmless
    assert not (tmp_path / "running" / "a" / "A" / f"{DS}.json").exists()
    assert date.fromisoformat(DS)


def test_an_unknown_flow_is_an_error_not_nothing_due(world):
    settings, config, ledger = world
    with pytest.raises(ConfigError, match="no flow 'mash-referrals.Z'"):
        plan_purge(settings, config, ledger, only_flow="mash-referrals.Z")


def test_ledger_verify_reports_disclosed_copies_held_past_their_period(world, monkeypatch):
    from typer.testing import CliRunner

    from transfers.cli import app

    settings, config, ledger = world
    sent = datetime.now(UTC) - timedelta(days=20)  # remote period P14D: due 6 days ago
    entry, _ = ledger.append("disclosure", agreement="mash-referrals", flow="mash-referrals.A",
                             logical_date=sent.date(), recipient="south-yorkshire-police", at=sent,
                             dedupe_key="disclosure:a", payload={"rows": 3, "files": [
                                 {"remote_path": "inbound/mash/x.csv.pgp", "size": 10, "sha256": "0" * 64}]})
    gone, _ = ledger.append("disclosure", agreement="old", flow="old.A", at=sent, payload={"files": []})
    monkeypatch.setenv("TRANSFERS_HOME", str(settings.home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(settings.config_dir))

    result = CliRunner().invoke(app, ["ledger", "verify"])

    assert result.exit_code == 3
    assert (f"retention: entry {entry.seq}: disclosure mash-referrals.A {sent.date()} to south-yorkshire-police: "
            f"remote copy inbound/mash/x.csv.pgp was due for deletion on {(sent + timedelta(days=14)).date()}"
            ) in result.output
    assert f"entry {gone.seq}: disclosure of old.A" in result.output
    # Checked as on a day when the copy was still within its period, there is no gap for it.
    earlier = (sent + timedelta(days=1)).date().isoformat()
    within = CliRunner().invoke(app, ["ledger", "verify", "--now", earlier])
    assert f"entry {entry.seq}:" not in within.output


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


# --------------------------------------------------------------------------- nothing outside its place


def test_archive_dirs_outside_home_are_rejected_at_load_naming_file_and_key_all_at_once(config_dir):
    def change(data: dict) -> None:
        data["flows"][0]["retention"]["archive"] = {"period": "P6M", "dir": "../x"}
        data["flows"][1]["retention"]["archive"] = {"period": "P6M", "dir": "/tmp/x"}
        data["flows"][1]["source"]["path"] = "../x"  # local source files: under their connection's directory
        data["flows"][1]["consent"]["opt_outs"]["path"] = "/tmp/x"

    path = edit(config_dir, change)

    lines = problems(config_dir).splitlines()
    assert any(line.startswith(f"{path}: flows[1].source: ") and "'..'" in line for line in lines), lines
    assert any(line.startswith(f"{path}: flows[1].consent.opt_outs: ") and "must be relative" in line
               for line in lines), lines
    assert any(line.startswith(f"{path}: flows[0].retention.archive.dir: ") and "'..'" in line for line in lines), lines
    assert any(line.startswith(f"{path}: flows[1].retention.archive.dir: ") and "must be relative" in line
               for line in lines), lines


@pytest.mark.parametrize(("folder", "message"), [(".", "not the home itself"), ("./", "not the home itself"),
                                                 ("outbox", "already uses"), ("logs/archive", "already uses"),
                                                 ("ledger.db", "already uses"), ("a\\..\\..\\b", "'..'")])
def test_an_archive_dir_on_home_itself_or_another_place_is_rejected(config_dir, folder, message):
    path = edit(config_dir, lambda d: d["flows"][0]["retention"].update(archive={"period": "P6M", "dir": folder}))

    text = problems(config_dir)
    assert f"{path}: flows[0].retention.archive.dir: " in text and message in text, text


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


def test_a_partner_id_that_could_name_a_folder_outside_its_place_is_rejected(config_dir):
    path = config_dir / "protocol.yaml"
    path.write_text(path.read_text().replace("{id: dwp,", "{id: ../../dwp,", 1))

    text = problems(config_dir)
    assert f"{path}: signatories[" in text and "'../../dwp' is not a valid signatory id" in text, text


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
        result = CliRunner().invoke(app, ["purge", "--now", pretend.isoformat()])
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
