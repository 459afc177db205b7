"""A flow's report files as the pages in the Airflow UI list them, and names from outside that reach nothing else."""

from __future__ import annotations

from datetime import date

import pytest

from transfers.reports.files import flow_reports, report_file
from transfers.settings import Settings


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home", config_dir=tmp_path / "config")


@pytest.fixture
def reports(settings):
    base = settings.layout.reports_dir("mash-referrals", "A")
    (base / "dry-run").mkdir(parents=True)
    for name in (
        "quality_A_2026-11-24.html",
        "quality_A_2026-11-24.json",
        "quality_A_2026-11-25.html",
        "rectification_A_2026-11-25.html",
        "rectification_A_2026-11-25.csv",
        "dry-run/quality_A_2026-11-25.html",
    ):
        (base / name).write_text(name)
    return base


def test_the_flows_reports_are_listed_newest_run_first_a_dry_run_after_the_real_one(settings, reports):
    found = flow_reports(settings, "mash-referrals", "A")

    assert [r.name for r in found] == [
        "quality_A_2026-11-25.html",
        "rectification_A_2026-11-25.csv",
        "rectification_A_2026-11-25.html",
        "dry-run/quality_A_2026-11-25.html",
        "quality_A_2026-11-24.html",
        "quality_A_2026-11-24.json",
    ]
    assert [r.day for r in found][:4] == [date(2026, 11, 25)] * 4
    assert [r.dry_run for r in found] == [False, False, False, True, False, False]
    assert {r.kind for r in found} == {"quality", "rectification"}
    assert found[0].media_type == "text/html; charset=utf-8" and found[1].media_type.startswith("text/csv")


def test_what_is_not_a_report_of_the_layout_is_not_listed(settings, reports, tmp_path):
    outside = tmp_path / "secret.html"
    outside.write_text("not a report")
    (reports / "quality_A_2026-11-23.html").symlink_to(outside)  # a link, even named like a report
    (reports / "notes.txt").write_text("x")
    (reports / "quality_A_someday.html").write_text("x")  # no run date
    (reports / "quality_A_2026-11-23.exe").write_text("x")
    (reports / "deeper").mkdir()
    (reports / "deeper" / "quality_A_2026-11-23.html").write_text("x")  # not where the layout writes
    (reports / "linked").symlink_to(tmp_path, target_is_directory=True)

    names = {r.name for r in flow_reports(settings, "mash-referrals", "A")}

    assert not any("2026-11-23" in n or "someday" in n or "notes" in n for n in names)


@pytest.mark.parametrize(
    "name",
    [
        "../../../ledger.db",
        "/etc/passwd",
        "..%2Fledger.db",
        "./quality_A_2026-11-25.html",
        "dry-run/../quality_A_2026-11-25.html",
        "quality_A_2026-11-25.html\x00",
        "QUALITY_A_2026-11-25.html",
        "",
        "dry-run",
        ".",
    ],
)
def test_a_name_from_outside_finds_only_a_listed_file(settings, reports, name):
    (settings.home / "ledger.db").write_text("the ledger")

    assert report_file(settings, "mash-referrals", "A", name) is None


def test_a_listed_name_finds_its_file(settings, reports):
    found = report_file(settings, "mash-referrals", "A", "dry-run/quality_A_2026-11-25.html")

    assert found is not None and found.dry_run
    assert found.path == reports / "dry-run" / "quality_A_2026-11-25.html"
    assert found.path.read_text() == "dry-run/quality_A_2026-11-25.html"


def test_a_flow_without_reports_lists_none(settings):
    assert flow_reports(settings, "mash-referrals", "B") == []
