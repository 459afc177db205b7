"""A run's logical date is the day its data interval starts on the flow's clock, not in UTC.

The nightly runs are produced by Airflow's own timetables (the installed
``airflow.timetables`` classes the scheduler calls), across both 2026 clock changes.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from transfers.errors import ConfigError
from transfers.logical_date import flow_date

LONDON = "Europe/London"


@pytest.fixture(scope="module")
def airflow_timetables(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.timetables.trigger import CronTriggerTimetable

    return {"data-interval": CronDataIntervalTimetable, "trigger": CronTriggerTimetable}


def nightly_interval_starts(timetable, earliest: datetime, nights: int) -> list[datetime]:
    """Data interval starts of consecutive scheduled runs, asked of the timetable as the scheduler does."""
    import pendulum
    from airflow.timetables.base import TimeRestriction

    restriction = TimeRestriction(earliest=pendulum.instance(earliest), latest=None, catchup=True)
    starts, last = [], None
    for _ in range(nights):
        info = timetable.next_dagrun_info(last_automated_data_interval=last, restriction=restriction)
        assert info.logical_date == info.data_interval.start  # what the DAG hands to flow_date
        starts.append(info.data_interval.start)
        last = info.data_interval
    return starts


@pytest.mark.parametrize("kind", ["data-interval", "trigger"])
@pytest.mark.parametrize(("change", "first_night"), [("spring forward", date(2026, 3, 25)),
                                                     ("fall back", date(2026, 10, 21))])
def test_a_0030_london_schedule_gets_one_date_per_night_across_the_2026_clock_changes(
        airflow_timetables, kind, change, first_night):
    timetable = airflow_timetables[kind]("30 0 * * *", timezone=LONDON)
    starts = nightly_interval_starts(timetable, datetime.combine(first_night, time(0), ZoneInfo(LONDON)), 10)

    dates = [flow_date(start, LONDON) for start in starts]

    expected = [first_night + timedelta(days=n) for n in range(10)]
    assert dates == expected, (change, [s.isoformat() for s in starts])  # one distinct date per night, no gap
    # The clock change is inside the window: the same runs' UTC dates double a night (spring) or skip one (autumn).
    assert [s.astimezone(UTC).date() for s in starts] != expected


def test_summer_runs_just_after_midnight_take_the_local_date_not_the_utc_one():
    start = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 BST on 1 July

    assert flow_date(start, LONDON) == date(2026, 7, 1)
    assert flow_date(start, "UTC") == date(2026, 6, 30)
    assert flow_date(datetime(2026, 1, 15, 0, 30, tzinfo=UTC), LONDON) == date(2026, 1, 15)


def test_a_naive_interval_start_is_refused_not_guessed():
    with pytest.raises(ValueError, match="has no timezone"):
        flow_date(datetime(2026, 3, 29, 0, 30))


def test_a_flow_states_its_timezone_default_london_and_a_bad_one_names_file_and_key(tmp_path):
    import shutil

    import yaml

    from transfers.agreement import load_config
    from transfers.settings import PROJECT_ROOT

    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    assert {ref.flow.timezone for ref in load_config(config_dir).flows()} == {LONDON}
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][1]["timezone"] = "Europe/Londn"
    path.write_text(yaml.safe_dump(data, sort_keys=False))

    with pytest.raises(ConfigError) as caught:
        load_config(config_dir)
    assert f"{path}: flows[1].timezone: timezone 'Europe/Londn' is not an IANA timezone name" in str(caught.value)


def test_the_rendered_agreement_states_each_flows_schedule_with_its_timezone():
    from transfers.agreement import load_config
    from transfers.agreement_doc import render
    from transfers.settings import PROJECT_ROOT

    text = render(load_config(PROJECT_ROOT / "config"), "mash-referrals", "md")

    assert "`30 2 * * *` Europe/London" in text and "Schedule (cron, timezone)" in text


@pytest.mark.integration  # real gpg: every partner signs the agreement copy before it may run
def test_transfers_run_without_date_takes_today_on_the_flows_clock(tmp_path, monkeypatch, gpg_home):
    import json
    import shutil

    import yaml
    from typer.testing import CliRunner

    from tests.support.signoff import sign_off
    from transfers.cli import app
    from transfers.settings import PROJECT_ROOT

    now = datetime.now(UTC)
    # A zone whose date differs from UTC's right now: UTC+14 from 10:00 UTC, UTC-12 before 12:00 UTC.
    zone = "Pacific/Kiritimati" if now.hour >= 10 else "Etc/GMT+12"
    config_dir = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][1]["timezone"] = zone
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    signing = sign_off(config_dir, tmp_path / "keys", gpg_home)  # every partner signs this version, or nothing runs
    monkeypatch.setenv("AIRFLOW_VAR_TRANSFERS_SIGNING_KEY", gpg_home.export_secret(signing))  # the sender can sign
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("AIRFLOW_CONN_RFT_EXPORTS", json.dumps({"conn_type": "fs", "extra": {"path": str(tmp_path)}}))

    result = CliRunner().invoke(app, ["run", "mash-referrals.B"])  # no export for that date: stops at extract

    local_today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    assert local_today != datetime.now(UTC).date()
    assert f"attendances_{local_today}.csv" in result.output, result.output


def test_the_agreement_is_judged_on_todays_date_on_the_flows_clock_not_utc():
    from datetime import UTC, datetime

    from transfers.logical_date import flow_today

    summer_night = datetime(2026, 6, 30, 23, 30, tzinfo=UTC)  # 00:30 on 1 July in London
    assert flow_today("Europe/London", summer_night) == date(2026, 7, 1)
    assert flow_today("UTC", summer_night) == date(2026, 6, 30)
    with pytest.raises(ValueError, match="no timezone"):
        flow_today("Europe/London", datetime(2026, 7, 1, 0, 30))


def test_a_flow_run_judges_its_agreement_on_its_own_clock(tmp_path):
    import dataclasses

    from transfers.agreement import load_config
    from transfers.flowrun import FlowRun
    from transfers.logical_date import flow_today
    from transfers.settings import PROJECT_ROOT, Settings

    config = load_config(PROJECT_ROOT / "config")
    base = config.flow("mash-referrals.A")
    # UTC+14 and UTC-11: at any hour, at least one of them is on another date than UTC.
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        ref = dataclasses.replace(base, flow=base.flow.model_copy(update={"timezone": zone}))
        run = FlowRun(Settings(home=tmp_path), config, ref, date(2026, 7, 1), staging_key=b"k")
        assert run.today == flow_today(zone), zone
    kept = FlowRun(Settings(home=tmp_path), config, base, date(2026, 7, 1), staging_key=b"k", today=date(2026, 1, 2))
    assert kept.today == date(2026, 1, 2)  # a caller's date is kept
