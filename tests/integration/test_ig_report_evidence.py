"""The IG report's evidence sections against what real runs did (issue 15 item 3).

Flow B runs twice with a consent register, an opt-out list and deaths in its extract; flow A (statutory)
runs once; the sender is told of two withdrawals and makes one correction, so notices go out over the
private ``sshd`` to the recipients' real ``gpg``. The report is then made with ``transfers report ig`` and
opened in headless Chromium with every outside request recorded. Each figure is checked against the runs'
own results, the files the recipients decrypt, and the ledger; none is a constant.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.browser import chromium_path, render_offline
from tests.conftest import require_part
from tests.integration import privacy_world as pw
from tests.integration.conftest import LOGICAL_DATE, files_containing
from transfers.consent import REASONS
from transfers.devkit import synthetic
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

SYP, CS = "inbound/mash", "inbound/ed-attendances"
NIGHT2 = LOGICAL_DATE - timedelta(days=1)


def _plain(number: str) -> str:
    return number.replace(" ", "")


def _ed_with_deaths(on):
    frame = synthetic.ed_attendances(30, on)
    frame["date_of_death"] = None
    frame.loc[[5, 6], "date_of_death"] = (on - timedelta(days=3)).isoformat()
    return frame


def _number(dom: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}"[^>]*>\s*(\d+)\s*<', dom)
    assert found, f"{element_id} not in the report"
    return int(found.group(1))


def _report(cli, out_dir: Path) -> tuple[str, str, dict[str, list[dict]]]:
    """Run ``transfers report ig`` over the days the runs were recorded; (its output, the DOM, CSV rows by section)."""
    today = datetime.now(UTC).date()
    start, end = today - timedelta(days=1), today + timedelta(days=1)
    result = cli("report", "ig", "--from", start.isoformat(), "--to", end.isoformat(), "--out", str(out_dir))
    assert result.exit_code == 0, result.output
    html = out_dir / f"ig_{start}_{end}.html"
    rendered = render_offline(html)
    assert rendered.requests == []  # the new sections call out to nothing either
    sections = (
        "consent_exclusions",
        "notices",
        "flow_bases",
        "field_sharing",
        "pseudonym_keys",
        "pseudonym_key_events",
        "ledger_verification",
    )
    rows = {}
    for section in sections:
        with (out_dir / f"{html.stem}_{section}.csv").open() as fh:
            rows[section] = list(csv.DictReader(fh))
    return result.output, rendered.dom, rows


@pytest.fixture
def ran(world, gpg_partner, cli):
    """The runs, withdrawals and correction the report is checked against; returns each run's results."""
    numbers = [_plain(n) for n in synthetic.ed_attendances(30, LOGICAL_DATE)["nhs_number"]]
    for day in (LOGICAL_DATE, NIGHT2):
        pw.write_ed(world, _ed_with_deaths(day), day)
    register = pw.write_list(
        world,
        "consent.csv",
        [
            {"subject": numbers[0], "status": "withdrawn", "effective": "2026-01-01"},
            {"subject": numbers[1], "status": "restricted", "effective": "2026-01-01"},
        ],
    )
    opt_outs = pw.write_list(world, "opt_outs.csv", [{"nhs_number": numbers[2]}, {"nhs_number": numbers[3]}])

    def declare(data: dict) -> None:
        flow = pw.flow_of(data, "B")
        flow["fields"]["date_of_death"] = {"share": "drop"}
        flow["deceased"] = {"date_of_death": "date_of_death"}
        flow["consent"] = {
            "basis": "consent",
            "consent_register": {"kind": "csv", "connection": "rft_exports", "path": register},
            "opt_outs": {
                "kind": "csv",
                "connection": "rft_exports",
                "path": opt_outs,
                "subject": "nhs_number",
                "status": None,
                "effective": None,
            },
        }

    pw.edit_agreement(world, declare)
    results = {
        "A": [run_flow(world.run("mash-referrals.A"), world.resolvers())],
        "B": [run_flow(world.run("mash-referrals.B"), world.resolvers())],
    }
    referral = list(synthetic.referrals(40, LOGICAL_DATE)["nhs_number"])[0]
    for args in (
        ("consent", "withdraw", referral),
        ("consent", "withdraw", numbers[8]),
        ("correct", referral, "--fields", "risk_level,category", "--reference", "RECT-1"),
    ):
        told = cli(*args)
        assert told.exit_code == 0, told.output
    # The next night's run of B leaves out the subject the sender was told of (withdrawn by notice).
    results["B"].append(run_flow(world.run("mash-referrals.B", NIGHT2), world.resolvers()))
    return results, numbers, referral


def test_the_ig_report_shows_what_the_runs_excluded_notified_and_shared_and_the_verified_ledger_head(
    world, gpg_partner, cli, tmp_path, ran
):
    require_part("chromium", chromium_path() is not None, "apt-get install -y chromium")
    results, numbers, referral = ran
    out_dir = tmp_path / "ig"
    output, dom, rows = _report(cli, out_dir)

    # 1. Exclusions by reason: the sums of what each run's prepare step left out.
    expected = {flow: Counter() for flow in results}
    for flow, runs in results.items():
        for run in runs:
            expected[flow].update(run["prepare"]["excluded"])
    assert all(expected["B"][reason] for reason in REASONS)  # the scenario exercises every reason
    for reason in REASONS:
        assert _number(dom, f"total-excluded-{reason.replace('_', '-')}") == sum(e[reason] for e in expected.values())
    assert _number(dom, "total-excluded") == sum(sum(e.values()) for e in expected.values())
    by_flow: dict[str, Counter] = {}
    for row in rows["consent_exclusions"]:
        by_flow.setdefault(row["flow"].split(".")[1], Counter()).update({r: int(row[r]) for r in REASONS})
        assert int(row["rows_screened"]) == int(row["excluded"]) + int(row["rows_sent"])
    assert {f: +c for f, c in by_flow.items()} == {f: +c for f, c in expected.items()}
    assert sum(int(r["runs"]) for r in rows["consent_exclusions"]) == sum(len(r) for r in results.values())
    assert sum(int(r["rows_sent"]) for r in rows["consent_exclusions"]) == sum(
        run["prepare"]["rows_out"] for runs in results.values() for run in runs
    )

    # 2. Notices: what each recipient's gpg decrypts, by kind.
    received = Counter()
    for partner, remote_dir in (("south-yorkshire-police", SYP), ("rotherham-childrens-services", CS)):
        received.update((partner, n["notice"]) for n in pw.notices(world, gpg_partner, remote_dir))
    assert (
        received[("south-yorkshire-police", "correction")] and received[("rotherham-childrens-services", "withdrawal")]
    )
    reported = Counter()
    for row in rows["notices"]:
        reported[(row["recipient"], row["notice"])] += int(row["sent"])
        assert int(row["unconfirmed"]) == int(row["sent"])  # no recipient has confirmed yet
    assert reported == received
    for kind in ("withdrawal", "correction"):
        assert _number(dom, f"total-{kind}-notices") == sum(n for (_p, k), n in received.items() if k == kind)
    [correction] = [r for r in rows["notices"] if r["notice"] == "correction"]
    assert correction["fields"] == "risk_level, category"

    # 3. Each flow's own basis, as its agreement says and as its runs recorded it.
    bases = {r["flow"]: r for r in rows["flow_bases"]}
    for key in ("mash-referrals.A", "mash-referrals.B"):
        consent = world.config.flow(key).flow.consent
        row = bases[key]
        assert (row["basis"], row["ground_id"] or None, row["legal_basis_id"] or None) == (
            consent.basis,
            consent.ground,
            consent.legal_basis,
        )
        ran_on = Counter(run["prepare"]["basis"] for run in results[key[-1]])
        assert (int(row["runs_consent"]), int(row["runs_statutory"])) == (ran_on["consent"], ran_on["statutory"])
        assert int(row["shares_without_consent"]) == len(pw.payloads(world, "shared-without-consent", key))
    assert "statutory (without consent)" in dom and bases["mash-referrals.A"]["ground"] in dom

    # 4. How each field was shared: the rule, and what the recipient's file holds.
    fields = {(r["flow"], r["field"]): r for r in rows["field_sharing"]}
    delivered_b = pw.sent(world, gpg_partner, CS)
    for (key, name), row in fields.items():
        spec = world.config.flow(key).flow.fields[name]
        assert row["share"] == spec.share
        disclosures = pw.payloads(world, "disclosure", key)
        assert int(row["disclosures"]) == sum(name in p["fields"] for p in disclosures)
        assert int(row["period_disclosures"]) == len(disclosures)
        if key.endswith(".B"):
            assert (name in delivered_b.columns) is (spec.share != "drop")
    assert fields[("mash-referrals.B", "date_of_birth")]["how"] == "generalised to year"
    assert delivered_b["date_of_birth"].str.fullmatch(r"\d{4}|").all()
    assert fields[("mash-referrals.B", "postcode")]["how"] == "generalised to postcode district"
    assert delivered_b["postcode"].str.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]?|").all()
    assert fields[("mash-referrals.B", "presenting_complaint")]["how"] == "not shared"
    kept = set(pw.pseudonyms(world, "mash-referrals.B", numbers).values())
    assert fields[("mash-referrals.B", "nhs_number")]["how"].startswith("pseudonymised")
    assert set(delivered_b["nhs_number"]) <= kept

    # 5. The pseudonym key ids, and never the key: the ids the notices and disclosures carry.
    key_ids = {
        k
        for remote_dir in (SYP, CS)
        for n in pw.notices(world, gpg_partner, remote_dir)
        for k in n["subject"]["key_ids"]
    }
    for key in ("mash-referrals.A", "mash-referrals.B"):
        [row] = [r for r in rows["pseudonym_keys"] if r["flow"] == key]
        made = pw.payloads(world, "disclosure", key)
        assert {row["key_id"]} == {p["pseudonym_key_id"] for p in made} == key_ids
        assert int(row["disclosures"]) == len(made) and row["configured"] == "True"
    first_use = pw.payloads(world, "pseudonym-key")
    assert [r["event"] for r in rows["pseudonym_key_events"]] == [p["event"] for p in first_use]
    secrets = [world.secrets["mash_pseudonym_key"]] + [p["key_fingerprint"] for p in first_use]
    assert files_containing(out_dir, secrets) == []
    assert files_containing(out_dir, numbers + [referral]) == []  # and no identifier

    # 6. The ledger verified, to the head the report covers.
    with world.settings.open_ledger() as ledger:
        head = ledger.head()
    assert head is not None
    [check] = rows["ledger_verification"]
    assert (check["status"], int(check["head_seq"]), check["head_hash"]) == ("verified", head.seq, head.hash)
    assert int(check["checked"]) == head.seq and _number(dom, "ledger-head-seq") == head.seq
    assert re.search(r'id="ledger-status">verified<', dom) and head.hash in dom
    assert f"ledger verified to entry {head.seq}" in output


def test_a_ledger_cut_short_shows_as_failed_verification_in_the_ig_report(world, cli, tmp_path):
    require_part("chromium", chromium_path() is not None, "apt-get install -y chromium")
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    anchor = world.settings.ledger_anchor
    head = json.loads(anchor.read_text())
    anchor.write_text(json.dumps(dict(head, seq=head["seq"] + 3)))  # the anchor remembers entries the ledger lost

    output, dom, rows = _report(cli, tmp_path / "ig")

    [check] = rows["ledger_verification"]
    assert check["status"] == "FAILED" and int(check["head_seq"]) == head["seq"]
    assert f"says {head['seq'] + 3}" in check["problems"]
    assert re.search(r'<tr class="overdue"><th>Result</th><td class="status" id="ledger-status">FAILED<', dom)
    assert "ledger FAILED verification" in output
