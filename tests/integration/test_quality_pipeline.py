"""Quality through the whole pipeline: block, quarantine and warn as the recipient sees them (decrypted
with the real gpg from the real sshd), drift over several runs, the rectification notice kept by the
sender, the dry run and the report command, and the reports opened offline in headless Chromium."""

from __future__ import annotations

import csv
import re
from datetime import timedelta

import pytest
import yaml

from tests.browser import render_offline
from tests.integration.conftest import LOGICAL_DATE, files_containing, read_delivery
from transfers.devkit import synthetic
from transfers.errors import QualityBlocked
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

FLOW_B = "mash-referrals.B"
REMOTE_B = "inbound/ed-attendances"
BAD_NHS = "9990001236"  # the check digit of 999000123 is 5
SIX = ("Accuracy", "Validity", "Reliability", "Timeliness", "Relevance", "Completeness")


def edit_flow_b(world, **quality) -> None:
    """Change flow B's quality policy in this world's copy of the agreement."""
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    flow = next(f for f in data["flows"] if f["id"] == "B")
    on_failure = quality.pop("on_failure", {})
    flow["quality"]["on_failure"].update(on_failure)
    flow["quality"].update(quality)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()


def export_b(world, day, frame) -> None:
    synthetic.write_ed_csv(world.root / "exports", day, frame)


def notice_rows(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def quality_entries(world) -> list[dict]:
    return [e.payload for e in world.settings.open_ledger().entries(kind="quality", flow=FLOW_B)]


def quality_line(caplog) -> tuple[str, dict]:
    """The quality stage's one summary line: its level and fields."""
    [record] = [r for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == "quality checked"]
    return record.levelname, record.msg


def test_block_sends_nothing_and_the_notice_names_the_record(world, caplog):
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[4, "nhs_number"] = BAD_NHS
    export_b(world, LOGICAL_DATE, frame)
    run = world.run(FLOW_B)

    with pytest.raises(QualityBlocked, match=r"blocked by data quality: accuracy \(1 of 30 rows\); nothing was sent"):
        run_flow(run, world.resolvers())

    assert world.remote_names(REMOTE_B) == []
    ledger = world.settings.open_ledger()
    (entry,) = ledger.entries(kind="quality", flow=FLOW_B)
    assert entry.payload["blocked"] == ["accuracy"] and entry.payload["records_to_fix"] == 1
    assert BAD_NHS not in str(entry.payload)
    assert list(ledger.entries(kind="disclosure")) == []
    rows = notice_rows(run.reports_dir / f"rectification_B_{LOGICAL_DATE}.csv")
    assert [(r["record_key"], r["field"], r["characteristic"]) for r in rows] == [
        (frame.at[4, "attendance_id"], "nhs_number", "accuracy")
    ]
    level, line = quality_line(caplog)  # the run's failure: the one stage line that is an error
    assert level == "ERROR" and (line["outcome"], line["blocked"], line["rows"]) == ("blocked", ["accuracy"], 30)


def test_quarantine_holds_back_exactly_the_failing_records(world, gpg_partner, caplog):
    edit_flow_b(world, on_failure={"accuracy": "quarantine"})
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[3, "nhs_number"] = BAD_NHS
    frame.at[17, "nhs_number"] = "1234567890"
    frame.at[22, "date_of_birth"] = (LOGICAL_DATE + timedelta(days=30)).isoformat()  # born in the future
    export_b(world, LOGICAL_DATE, frame)
    failing = {frame.at[i, "attendance_id"] for i in (3, 17, 22)}
    run = world.run(FLOW_B)

    results = run_flow(run, world.resolvers())

    assert results["quality"]["quarantined"] == 3
    (delivered,) = world.delivered(REMOTE_B)
    received = read_delivery(gpg_partner, delivered)
    assert set(received["attendance_id"]) == set(frame["attendance_id"]) - failing
    assert len(received) == 27
    # the notice lists exactly the held-back records, and stays with the sender
    notice = run.reports_dir / f"rectification_B_{LOGICAL_DATE}.csv"
    assert {r["record_key"] for r in notice_rows(notice)} == failing
    assert {r["characteristic"] for r in notice_rows(notice)} == {"accuracy"}
    held = sorted(failing)
    assert files_containing(world.remote_root, held) == []
    assert files_containing(world.settings.home / "outbox", held) == []
    assert world.remote_names(REMOTE_B) == sorted(p.name for p in (world.remote_root / REMOTE_B).iterdir())
    assert not any("rectification" in name for name in world.remote_names(REMOTE_B))
    level, line = quality_line(caplog)  # records held back: a warning, with the counts
    assert level == "WARNING" and (line["outcome"], line["passed"], line["held_back"]) == ("held back", 27, 3)


def test_warn_sends_everything_and_reports_the_warning(world, gpg_partner, caplog):
    edit_flow_b(world, on_failure={"validity": "warn"})
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[5, "safeguarding_flag"] = "maybe"
    frame.at[9, "postcode"] = "not a postcode"
    frame["ethnicity"] = "not agreed"  # relevance (warn): reported, and still dropped before sending
    export_b(world, LOGICAL_DATE, frame)
    run = world.run(FLOW_B)

    results = run_flow(run, world.resolvers())

    assert results["quality"]["quarantined"] == 0 and results["quality"]["records_to_fix"] == 2
    (delivered,) = world.delivered(REMOTE_B)
    received = read_delivery(gpg_partner, delivered)
    assert set(received["attendance_id"]) == set(frame["attendance_id"])
    assert "ethnicity" not in received.columns and "not agreed" not in received.to_csv()
    (entry,) = quality_entries(world)
    assert entry["dimensions"]["relevance"]["outcome"] == "warn"
    assert entry["dimensions"]["validity"] == {
        "checks": 4, "passed": 2, "failed": 2, "failing_rows": 2, "policy": "warn", "outcome": "warn",
    }
    level, line = quality_line(caplog)
    assert level == "WARNING" and line["outcome"] == "warned" and {"relevance", "validity"} <= set(line["failing"])


def test_row_count_and_null_rate_drift_over_several_runs(world):
    edit_flow_b(world, row_count_drift=0.5, null_rate_drift=0.2, min_history=3)
    days = [LOGICAL_DATE - timedelta(days=k) for k in (5, 4, 3, 2, 1)]
    reports = {}
    for i, day in enumerate(days[:4]):
        export_b(world, day, synthetic.ed_attendances(30 + i, day, seed=10 + i))
        run = world.run(FLOW_B, day)
        run_flow(run, world.resolvers())
        reports[day] = run.reports_dir / f"quality_B_{day}.json"

    import json

    def row_count(day):
        doc = json.loads(reports[day].read_text())
        return next(c for c in doc["checks"] if c["id"] == "reliability.row_count")

    # three runs with no (or too little) history, said plainly; the fourth is judged and passes
    for n, day in enumerate(days[:3]):
        check = row_count(day)
        assert check["success"] is None
        assert check["note"].startswith(f"no history yet: {n} earlier run(s) of this flow, 3 needed")
    assert row_count(days[3])["success"] is True

    # the fifth extract has a third of the usual rows: blocked, nothing sent for that day
    export_b(world, days[4], synthetic.ed_attendances(10, days[4], seed=20))
    with pytest.raises(QualityBlocked, match="reliability"):
        run_flow(world.run(FLOW_B, days[4]), world.resolvers())
    last = quality_entries(world)[-1]
    assert last["logical_date"] == days[4].isoformat() and last["blocked"] == ["reliability"]

    # the same day again with the usual row count, but postcode suddenly missing on half the records
    frame = synthetic.ed_attendances(31, days[4], seed=21)
    frame.loc[:15, "postcode"] = None
    export_b(world, days[4], frame)
    run = world.run(FLOW_B, days[4])
    with pytest.raises(QualityBlocked, match="reliability"):
        run_flow(run, world.resolvers())
    doc = json.loads((run.reports_dir / f"quality_B_{days[4]}.json").read_text())
    null_rate = next(c for c in doc["checks"] if c["id"] == "reliability.null_rate.postcode")
    assert null_rate["success"] is False and "51.6% of records miss postcode, against 0.0%" in null_rate["note"]
    assert next(c for c in doc["checks"] if c["id"] == "reliability.row_count")["success"] is True
    assert world.remote_names(REMOTE_B) and not any(days[4].isoformat() in n for n in world.remote_names(REMOTE_B))


def test_check_is_a_dry_run_and_report_quality_prints_summary_and_paths(world, cli):
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[2, "nhs_number"] = BAD_NHS
    export_b(world, LOGICAL_DATE, frame)

    dry = cli("check", FLOW_B, "--date", LOGICAL_DATE.isoformat())

    assert dry.exit_code == 1, dry.output
    assert "dry run, nothing sent" in dry.output and "blocked by accuracy" in dry.output
    for name in ("accuracy", "validity", "reliability", "timeliness", "relevance", "completeness"):
        assert name in dry.output
    assert "records to fix: 1" in dry.output
    assert world.remote_names(REMOTE_B) == []
    assert quality_entries(world) == []  # a dry run is not history
    dry_dir = world.settings.home / "reports" / "mash-referrals" / "B" / "dry-run"
    assert f"{dry_dir}/quality_B_{LOGICAL_DATE}.html" in dry.output
    scorecard = (dry_dir / f"quality_B_{LOGICAL_DATE}.html").read_text()
    assert "<strong>Dry run</strong>" in scorecard and "transfer would be blocked" in scorecard
    assert "records sent" not in scorecard and "Nothing was sent" not in scorecard
    assert not (world.settings.home / "runs" / "mash-referrals" / "B" / f"{LOGICAL_DATE}.check").exists()

    no_report = cli("report", "quality", FLOW_B)
    assert no_report.exit_code == 2 and "no quality report" in no_report.output

    frame.at[2, "nhs_number"] = synthetic.ed_attendances(30, LOGICAL_DATE).at[2, "nhs_number"]
    export_b(world, LOGICAL_DATE, frame)
    assert cli("run", FLOW_B, "--date", LOGICAL_DATE.isoformat()).exit_code == 0
    report = cli("report", "quality", FLOW_B, "--date", LOGICAL_DATE.isoformat())
    assert report.exit_code == 0, report.output
    assert "all six characteristics passed" in report.output and "30 records" in report.output
    reports = world.settings.home / "reports" / "mash-referrals" / "B"
    for name in (f"quality_B_{LOGICAL_DATE}.html", f"quality_B_{LOGICAL_DATE}.json",
                 f"rectification_B_{LOGICAL_DATE}.html", f"rectification_B_{LOGICAL_DATE}.csv"):
        assert str(reports / name) in report.output


def test_scorecard_and_notice_open_offline_in_chromium(world, chromium):
    edit_flow_b(world, on_failure={"validity": "warn", "accuracy": "quarantine"})
    yesterday = LOGICAL_DATE - timedelta(days=1)  # an earlier run, so the scorecard has a trend to draw
    export_b(world, yesterday, synthetic.ed_attendances(28, yesterday, seed=5))
    run_flow(world.run(FLOW_B, yesterday), world.resolvers())
    frame = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame.at[1, "nhs_number"] = BAD_NHS
    frame.at[6, "safeguarding_flag"] = "maybe"
    export_b(world, LOGICAL_DATE, frame)
    run = world.run(FLOW_B)
    run_flow(run, world.resolvers())

    scorecard = render_offline(run.reports_dir / f"quality_B_{LOGICAL_DATE}.html")
    assert scorecard.requests == []
    for name in SIX:
        assert f'<section id="{name.lower()}">' in scorecard.dom and name in scorecard.dom
    assert "Records to fix" in scorecard.dom and "Recent runs" in scorecard.dom
    # the headline, and the trend charts with this run's figures (Chromium keeps each chart's description)
    assert re.search(r'<p class="headline quarantine" id="headline">.*?Held back.*?1 of 30 records held back', scorecard.dom,
                     re.S)
    assert (f'<desc id="trend-records-desc">Records checked per run: {yesterday}: 28; {LOGICAL_DATE}: 30.</desc>'
            in scorecard.dom)
    assert f"Accuracy: share of records failing per run: {yesterday}: 0%; {LOGICAL_DATE}: 3.3%.</desc>" in scorecard.dom
    assert scorecard.dom.count('<svg class="chart"') == 7

    notice = render_offline(run.reports_dir / f"rectification_B_{LOGICAL_DATE}.html")
    assert notice.requests == []
    for i in (1, 6):
        assert frame.at[i, "attendance_id"] in notice.dom
    assert BAD_NHS not in notice.dom and "maybe" not in notice.dom


def edit_flow_b_fields(world, **checks) -> None:
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    flow = next(f for f in data["flows"] if f["id"] == "B")
    for name, extra in checks.items():
        flow["fields"][name]["checks"].update(extra)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()


def test_seeded_defects_through_the_pipeline_then_the_clean_set_passes_all_six(world, gpg_partner):
    edit_flow_b_fields(world, arrived_at={"after": "date_of_birth"},
                       postcode={"districts": ["S60", "S61", "S62", "S63", "S65", "S66"]})
    clean = synthetic.ed_attendances(30, LOGICAL_DATE)
    frame = clean.copy()
    frame.at[1, "nhs_number"] = BAD_NHS  # accuracy: check digit
    frame.at[2, "date_of_birth"] = (LOGICAL_DATE + timedelta(days=3)).isoformat()  # accuracy: future, and after arrival
    frame.at[3, "postcode"] = "S1 2AB"  # accuracy: a district outside the reference list
    frame.at[4, "postcode"] = "ZZ99 QQQ"  # validity: not a postcode
    frame.at[5, "attendance_id"] = frame.at[0, "attendance_id"]  # reliability: duplicate key
    frame.at[6, "arrived_at"] = (pd_day(LOGICAL_DATE) - timedelta(days=20)).isoformat()  # timeliness: stale record
    frame.at[7, "safeguarding_flag"] = None  # completeness
    frame.at[8, "safeguarding_flag"] = ""  # completeness
    frame["ethnicity"] = "not agreed"  # relevance: an extra column
    export_b(world, LOGICAL_DATE, frame)
    run = world.run(FLOW_B)

    with pytest.raises(QualityBlocked, match="accuracy .*validity .*reliability"):
        run_flow(run, world.resolvers())

    (entry,) = quality_entries(world)
    failing = {d: (v["failed"], v["failing_rows"]) for d, v in entry["dimensions"].items() if v["failed"]}
    assert failing == {
        "accuracy": (4, 3),  # nhs, not_future and order (one record), district
        "validity": (1, 1),
        "reliability": (1, 2),  # both copies of the duplicated key
        "timeliness": (1, 1),
        "relevance": (1, 0),
        "completeness": (1, 2),
    }
    key = frame["attendance_id"]
    notice = {(r["record_key"], r["check"]) for r in notice_rows(run.reports_dir / f"rectification_B_{LOGICAL_DATE}.csv")}
    assert notice == {
        (key[1], "accuracy.nhs_number.nhs_number"),
        (key[2], "accuracy.not_future.date_of_birth"),
        (key[2], "accuracy.order.arrived_at"),
        (key[3], "accuracy.district.postcode"),
        (key[4], "validity.format.postcode"),
        (key[5], "reliability.record_key"),
        (key[6], "timeliness.recent.arrived_at"),
        (key[7], "completeness.required.safeguarding_flag"),
        (key[8], "completeness.required.safeguarding_flag"),
    }
    assert world.remote_names(REMOTE_B) == []

    export_b(world, LOGICAL_DATE, clean)
    results = run_flow(world.run(FLOW_B), world.resolvers())
    passed = quality_entries(world)[-1]
    assert {d: v["outcome"] for d, v in passed["dimensions"].items()} == dict.fromkeys(
        ("accuracy", "validity", "reliability", "timeliness", "relevance", "completeness"), "pass")
    assert results["quality"]["records_to_fix"] == 0
    (delivered,) = world.delivered(REMOTE_B)
    assert len(read_delivery(gpg_partner, delivered)) == 30


def pd_day(day):
    from datetime import datetime

    return datetime.combine(day, datetime.min.time())
