"""HomeLayout: every path under TRANSFERS_HOME comes from one object, and it reads back (flow, date) by its own shape."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

import transfers
from transfers.errors import ConfigError
from transfers.settings import HOME_FOLDERS, PROJECT_ROOT, Dated, HomeLayout, Settings

DAY = date(2026, 11, 20)
A, F, P = "mash-referrals", "A", "south-yorkshire-police"


@pytest.fixture
def layout(tmp_path: Path) -> HomeLayout:
    return HomeLayout(tmp_path / "home")


def put(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- every place's path


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        (lambda lay: lay.run_dir(A, F, DAY), f"runs/{A}/{F}/2026-11-20"),
        (lambda lay: lay.check_dir(A, F, DAY), f"runs/{A}/{F}/2026-11-20.check"),
        (lambda lay: lay.outbox_dir(A, F, DAY, P), f"outbox/{A}/{F}/2026-11-20/{P}"),
        (lambda lay: lay.reports_dir(A, F), f"reports/{A}/{F}"),
        (lambda lay: lay.dry_run_reports_dir(A, F), f"reports/{A}/{F}/dry-run"),
        (lambda lay: lay.notices_dir(A, F, P), f"notices/{A}/{F}/{P}"),
        (lambda lay: lay.log_path(A, F, DAY), f"logs/{A}/{F}/2026-11-20.log"),
        (lambda lay: lay.running_marker(A, F, DAY), f"running/{A}/{F}/2026-11-20.json"),
        (lambda lay: lay.mailbox_cache(A, F, DAY), f"inbox-cache/{A}/{F}/2026-11-20"),
        (lambda lay: lay.journal, "retention/unrecorded.jsonl"),
        (lambda lay: lay.ig_reports, "ig-reports"),
        (lambda lay: lay.ledger_db, "ledger.db"),
        (lambda lay: lay.ledger_head, "ledger.head"),
        (lambda lay: lay.archive_root("archive"), "archive"),
        (lambda lay: lay.archive_root("archive").joinpath(*HomeLayout.delivery_parts(A, F, DAY, P)),
         f"archive/{A}/{F}/2026-11-20/{P}"),
    ],
)
def test_every_place_has_one_path_under_home(layout, build, expected):
    assert build(layout) == layout.home / expected


def test_every_folder_directly_under_home_is_in_the_list_an_archive_may_not_take(layout):
    tops = {p.relative_to(layout.home).parts[0] for p in (
        layout.run_dir(A, F, DAY), layout.outbox_dir(A, F, DAY, P), layout.reports_dir(A, F),
        layout.notices_dir(A, F, P), layout.log_path(A, F, DAY), layout.running_marker(A, F, DAY),
        layout.journal, layout.ig_reports, layout.mailbox_cache(A, F, DAY))}
    assert tops <= set(HOME_FOLDERS)
    with pytest.raises(ValueError, match="not a folder of the home layout"):
        layout.folder("archive")


def test_settings_and_the_run_context_delegate_to_the_layout(tmp_path):
    from types import SimpleNamespace

    from transfers.flowrun import FlowRun

    settings = Settings(home=tmp_path / "home")
    lay = settings.layout
    assert lay == HomeLayout(settings.home)
    assert settings.ledger_database == f"sqlite:///{lay.ledger_db.resolve()}"
    assert settings.ledger_anchor == lay.ledger_head

    ref = SimpleNamespace(agreement=SimpleNamespace(id=A), flow=SimpleNamespace(id=F, timezone="Europe/London"))
    run = FlowRun(settings, None, ref, DAY, staging_key=b"k", today=DAY)  # type: ignore[arg-type]
    assert run.run_dir == lay.run_dir(A, F, DAY)
    assert run.outbox_dir(SimpleNamespace(partner=P)) == lay.outbox_dir(A, F, DAY, P)  # type: ignore[arg-type]
    assert run.reports_dir == lay.reports_dir(A, F)
    assert run.log_path == lay.log_path(A, F, DAY)


def test_an_archive_dir_is_strictly_inside_home(layout):
    for folder in ("", ".", "../elsewhere", "/tmp/x", "a/../.."):
        with pytest.raises(ConfigError, match="must be a folder under TRANSFERS_HOME"):
            layout.archive_root(folder)


# --------------------------------------------------------------------------- round trips: path -> (flow, date)


def test_each_dated_place_gives_back_the_flow_date_and_partner_it_was_made_for(layout):
    other = DAY - timedelta(days=1)
    archive = layout.archive_root("archive")
    made = {
        "runs": [put(layout.run_dir(A, F, DAY) / "extract" / "part-0001.csv.fernet").parent.parent,
                 put(layout.check_dir(A, F, other) / "extract" / "columns.json").parent.parent],
        "outbox": [put(layout.outbox_dir(A, F, DAY, P) / "x.csv.pgp").parent],
        "archive": [put(archive.joinpath(*HomeLayout.delivery_parts(A, F, other, P), "x.csv.pgp")).parent],
        "logs": [put(layout.log_path(A, F, DAY))],
        "running": [put(layout.running_marker(A, F, other), "{}")],
    }
    expected = {
        "runs": [Dated(made["runs"][0], A, F, DAY), Dated(made["runs"][1], A, F, other)],
        "outbox": [Dated(made["outbox"][0], A, F, DAY, P)],
        "archive": [Dated(made["archive"][0], A, F, other, P)],
        "logs": [Dated(made["logs"][0], A, F, DAY)],
        "running": [Dated(made["running"][0], A, F, other)],
    }
    for folder, want in expected.items():
        root = archive if folder == "archive" else None
        assert sorted(layout.dated(folder, A, F, root=root), key=lambda d: d.day) == sorted(want, key=lambda d: d.day)
    assert layout.running_days(A, F) == {other}


def test_each_retention_place_holds_its_files_with_their_runs_date(layout):
    archive = layout.archive_root("archive")
    stem = HomeLayout.report_stem(F, DAY)
    files = {
        "runs": put(layout.run_dir(A, F, DAY) / "extract" / "part-0001.csv.fernet"),
        "outbox": put(layout.outbox_dir(A, F, DAY, P) / f"{A}_{F}_2026-11-20.csv.pgp"),
        "archive": put(archive.joinpath(*HomeLayout.delivery_parts(A, F, DAY, P), "m.manifest.json")),
        "logs": put(layout.log_path(A, F, DAY)),
        "reports": put(layout.reports_dir(A, F) / f"quality_{stem}.html"),
        "notices": put(layout.notices_dir(A, F, P) / f"{A}_{F}_withdrawal-notice_0123456789ab.json.pgp"),
    }
    dry = put(layout.dry_run_reports_dir(A, F) / f"rectification_{stem}.csv")
    for place, path in files.items():
        held = list(layout.held(place, A, F, root=archive if place == "archive" else None))
        if place == "reports":
            assert [(h.path, h.day) for h in held] == [(dry, DAY), (path, DAY)]
        else:
            assert [h.path for h in held] == [path]
            # A notice covers a subject's disclosures, not one run: it has no date of its own.
            assert held[0].day == (None if place == "notices" else DAY)
        if place in ("outbox", "archive"):
            assert held[0].partner == P


# --------------------------------------------------------------------------- what is not in its shape is not its


def test_a_foreign_folder_or_file_is_not_taken_for_a_runs_copy(layout, tmp_path):
    base = (A, F)
    foreign = [
        put(layout.home / "foreign" / A / F / "2026-11-20" / "x"),  # not a folder of the layout
        put(layout.home.joinpath("runs", *base, "not-a-date", "x")),
        put(layout.home.joinpath("runs", *base, "20261120", "x")),  # fromisoformat reads this; the layout never writes it
        put(layout.home.joinpath("runs", *base, "2026-W47-5", "x")),
        put(layout.home.joinpath("runs", *base, "stray-file")),
        put(layout.home.joinpath("outbox", *base, "2026-11-20", "no-partner-folder.pgp")),
        put(layout.home.joinpath("outbox", *base, "2026-13-01", P, "x.pgp")),
        put(layout.home.joinpath("logs", *base, "notes.txt")),
        put(layout.home.joinpath("logs", *base, "2026-11-20.log.1")),
        put(layout.home.joinpath("running", *base, ".2026-11-20.json.123.tmp")),
    ]
    outside = put(tmp_path / "outside" / "x")
    (layout.home / "runs" / A / F / "2026-11-21").symlink_to(outside.parent, target_is_directory=True)

    for folder in ("runs", "outbox", "logs", "running"):
        assert list(layout.dated(folder, A, F)) == [], folder
    for place in ("runs", "outbox", "logs"):
        assert list(layout.held(place, A, F)) == [], place
    assert all(p.exists() for p in foreign)


def test_the_purge_leaves_what_is_not_the_layouts_alone(tmp_path):
    from transfers.agreement import load_config
    from transfers.retention import execute_purge, inventory, plan_purge

    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    settings = Settings(home=tmp_path / "home", config_dir=config_dir)
    lay = settings.layout
    ours = put(lay.outbox_dir(A, F, DAY, P) / "x.csv.pgp")
    theirs = [put(lay.home / "runs" / A / F / "someone-elses" / "notes.txt"), put(lay.home / "foreign" / "x")]
    config = load_config(config_dir)
    now = datetime.now(UTC) + timedelta(days=400)
    with settings.open_ledger() as ledger:
        assert [i.path for i in inventory(settings, config, ledger)] == [str(ours)]
        held = inventory(settings, config, ledger)[0]
        assert (held.place, held.day, held.logical_date) == ("outbox", DAY, "2026-11-20")
        execute_purge(plan_purge(settings, config, ledger, now=now), settings, config, ledger,
                      lambda conn_id: pytest.fail(conn_id), now=now)
    assert not ours.exists()
    assert all(p.exists() for p in theirs)


# --------------------------------------------------------------------------- nobody else builds home paths


def test_no_module_but_settings_builds_a_path_under_home():
    root = Path(transfers.__file__).parent
    pattern = re.compile(r"(settings\.home|\.home|\bhome)\s*/|home\.joinpath\(")
    offenders = [f"{path.relative_to(root.parent)}:{n}: {line.strip()}"
                 for path in sorted(root.rglob("*.py")) if path.name not in ("settings.py", "layout.py") or path.parent != root
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == [], "build paths under TRANSFERS_HOME with settings.layout (HomeLayout):\n" + "\n".join(offenders)


def test_a_path_a_work_store_names_relative_to_the_home_stays_inside_it(tmp_path):
    layout = HomeLayout(tmp_path / "home")

    assert layout.at("reports/mash-referrals/A") == tmp_path / "home" / "reports" / "mash-referrals" / "A"
    for escaping in ("../elsewhere", "reports/../../etc", "/etc/passwd", ""):
        with pytest.raises(ValueError, match="not a path inside the home"):
            layout.at(escaping)
