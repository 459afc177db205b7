"""The IG report against the ledger, after a scripted sequence of runs, a purge and a share without consent.

Runs are real (PostgreSQL, gpg, sshd); the purge is ``transfers purge`` with a
controlled clock; the report is opened in headless Chromium with every outside
request recorded. The share without consent is real too: the sample's flow A
shares under a statutory basis, and its run records ``shared-without-consent``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from tests.browser import chromium_path, render_offline
from tests.conftest import require_part
from transfers.pipeline import run_flow
from transfers.retention import inventory

pytestmark = pytest.mark.integration




def _number(dom: str, element_id: str) -> int:
    found = re.search(rf'id="{element_id}"[^>]*>\s*(\d+)\s*<', dom)
    assert found, f"{element_id} not in the report"
    return int(found.group(1))


def test_ig_report_opens_offline_and_its_figures_match_the_ledger(world, cli, tmp_path):
    require_part("chromium", chromium_path() is not None, "apt-get install -y chromium")
    today = datetime.now(UTC).date()
    agreements = world.settings.config_dir / "agreements"
    # The live agreement is due for review in 10 days; an older one lapsed yesterday.
    data = yaml.safe_load((agreements / "mash-referrals.yaml").read_text())
    data["review_by"] = today + timedelta(days=10)
    (agreements / "mash-referrals.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    old = dict(data, id="mash-referrals-2025", review_by=today - timedelta(days=1))
    (agreements / "mash-referrals-2025.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    world.reload()

    run_flow(world.run("mash-referrals.A"), world.resolvers())
    run_flow(world.run("mash-referrals.B"), world.resolvers())
    ledger = world.settings.open_ledger()
    later = (datetime.now(UTC) + timedelta(days=20)).date()
    assert cli("purge", "--as-of", later.isoformat()).exit_code == 0
    # A notice kept past its period (P90D): held now, and overdue.
    notice = world.settings.home / "notices" / "mash-referrals" / "A" / "rectification_old.csv"
    notice.parent.mkdir(parents=True, exist_ok=True)
    notice.write_text("referral_id\nR000001\n")
    stale = time.time() - 100 * 86400
    os.utime(notice, (stale, stale))

    out_dir = tmp_path / "ig"
    result = cli("report", "ig", "--from", (today - timedelta(days=1)).isoformat(), "--to", later.isoformat(),
                 "--out", str(out_dir))
    assert result.exit_code == 0, result.output
    html = out_dir / f"ig_{today - timedelta(days=1)}_{later}.html"
    rendered = render_offline(html)
    assert rendered.requests == []
    dom = rendered.dom

    disclosures = list(ledger.entries(kind="disclosure"))
    purges = list(ledger.entries(kind="purge"))
    held = inventory(world.settings, world.config, ledger)
    assert len(disclosures) == 2 and purges and held
    assert _number(dom, "total-disclosures") == len(disclosures)
    # No recipient has returned a receipt: each disclosure is listed as pending (within receipt_within).
    assert _number(dom, "total-acknowledged") == 0
    assert dom.count('class="receipt pending') == len(disclosures)
    assert _number(dom, "total-rows") == sum(e.payload["rows"] for e in disclosures)
    without = list(ledger.entries(kind="shared-without-consent"))
    assert len(without) == 1  # flow A shares under a statutory basis and ground (the sample agreement)
    assert _number(dom, "total-without-consent") == len(without)
    assert _number(dom, "total-without-consent-rows") == sum(e.payload["rows"] for e in without)
    assert _number(dom, "total-purged") == len(purges)
    assert _number(dom, "total-purge-failures") == 0
    assert _number(dom, "total-held") == len(held)
    assert _number(dom, "total-overdue") == 1
    assert _number(dom, "total-lapsed") == 1
    assert _number(dom, "total-due-for-review") == 1

    # One certificate per purge entry, with its hash and the copy's digest.
    assert dom.count("Certificate of destruction: ledger entry") == len(purges)
    for entry in purges:
        assert f"Certificate of destruction: ledger entry {entry.seq}<" in dom
        assert entry.hash in dom and entry.payload["sha256"] in dom
    # Each disclosure group names purpose, legal basis and the fields sent.
    for entry in disclosures:
        for word in entry.payload["fields"] + entry.payload["legal_basis"] + entry.payload["purposes"]:
            assert word in dom
    for entry in without:
        for key in ("legal_basis", "ground", "justification"):
            assert entry.payload[key] in dom
    # The disclosures section opens with records disclosed per month, a chart per flow and recipient, whose
    # figures (its description, which Chromium keeps in the DOM) are the ledger's rows.
    charts = re.findall(r'<desc id="disclosures-\d+-desc">(.*?)</desc>', dom)
    assert len(charts) == len({(e.flow, e.recipient) for e in disclosures}) == 2
    for entry in disclosures:
        name = world.config.protocol.name_of(entry.recipient or "")
        month = (entry.logical_date or entry.at.date()).strftime("%Y-%m")
        assert any(f"{entry.flow} to {name}:" in c and re.search(rf"{month}: {entry.payload['rows']:,}[;.]", c)
                   for c in charts), (entry.flow, charts)
    overdue_rows = re.findall(r'<tr class="overdue">(.*?)</tr>', dom, re.S)
    assert len(overdue_rows) == 1 and "rectification_old.csv" in overdue_rows[0]
    assert re.search(r'<tr class="lapsed">.*?mash-referrals-2025', dom, re.S)
    assert re.search(r'<tr class="review">.*?\(mash-referrals\)', dom, re.S)
    assert "R000001" not in dom  # no record value, even from a file it lists

    def rows(section: str) -> list[dict]:
        with (out_dir / f"{html.stem}_{section}.csv").open() as fh:
            return list(csv.DictReader(fh))

    by_recipient = {r["recipient"]: r for r in rows("disclosures")}
    for entry in disclosures:
        assert int(by_recipient[entry.recipient]["rows"]) == entry.payload["rows"]
        assert by_recipient[entry.recipient]["fields"] == ", ".join(entry.payload["fields"])
    assert sorted(int(r["seq"]) for r in rows("purges")) == [e.seq for e in purges]
    assert [r["ground"] for r in rows("without_consent")] == [e.payload["ground"] for e in without]
    assert [int(r["rows"]) for r in rows("without_consent")] == [e.payload["rows"] for e in without]
    assert [r["overdue"] for r in rows("held")].count("True") == 1
    assert {r["id"]: r["status"] for r in rows("agreements")} == {
        "mash-referrals": "due for review", "mash-referrals-2025": "lapsed"}
    shutil.rmtree(out_dir)
