"""``transfers ledger show``: the ledger's entries as recorded, filtered, oldest first; JSON Lines for scripts."""

from __future__ import annotations

import json

from tests.unit.cli.conftest import SYP
from transfers.ledger import Ledger
from transfers.ledger.records import KINDS


def _entries(home, **filters) -> list:
    with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
        return list(ledger.entries(**filters))


def _as_stored(entry) -> dict:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "kind": entry.kind,
        "agreement": entry.agreement,
        "flow": entry.flow,
        "logical_date": entry.logical_date.isoformat() if entry.logical_date else None,
        "recipient": entry.recipient,
        "dedupe_key": entry.dedupe_key,
        "payload": entry.payload,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
    }


def test_json_is_every_entry_as_stored_one_per_line_oldest_first(home, invoke):
    result = invoke("ledger", "show", "--json")

    assert result.exit_code == 0, result.output
    shown = [json.loads(line) for line in result.stdout.splitlines()]
    stored = _entries(home)
    assert len(stored) == 53  # the run's 43 entries and the exchange's 10
    assert shown == [_as_stored(e) for e in stored]
    assert [e["seq"] for e in shown] == list(range(1, 54))  # newest last


def test_kind_and_flow_filter_and_combine(home, invoke):
    disclosures = [
        json.loads(line) for line in invoke("ledger", "show", "--kind", "disclosure", "--json").stdout.splitlines()
    ]
    of_b = [
        json.loads(line)
        for line in invoke("ledger", "show", "--flow", "mash-referrals.B", "--json").stdout.splitlines()
    ]
    both = [
        json.loads(line)
        for line in invoke(
            "ledger", "show", "--kind", "disclosure", "--flow", "mash-referrals.B", "--json"
        ).stdout.splitlines()
    ]

    assert disclosures == [_as_stored(e) for e in _entries(home, kind="disclosure")]
    assert len(disclosures) == 5 and {e["kind"] for e in disclosures} == {"disclosure"}  # 2 by the run, 3 after
    assert of_b == [_as_stored(e) for e in _entries(home, flow="mash-referrals.B")]
    assert of_b and {e["flow"] for e in of_b} == {"mash-referrals.B"}
    assert both == [e for e in disclosures if e["flow"] == "mash-referrals.B"] and len(both) == 2


def test_the_table_shows_each_entry_with_its_columns_and_non_empty_payload_and_nothing_else(home, invoke):
    result = invoke("ledger", "show", "--kind", "acknowledgement")

    assert result.exit_code == 0, result.output
    [ack] = _entries(home, kind="acknowledgement")
    cells = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert cells == [
        [f"#{ack.seq}", f"acknowledgement, recorded {ack.at:%Y-%m-%d %H:%M:%S} UTC"],
        ["about", f"mash-referrals.A, 2026-05-01, to {SYP}"],
        ["delivery_id", ack.payload["delivery_id"]],
        ["reason", "column referral_reason missing from part 1"],
        ["rows", "0"],
        ["status", "rejected"],
    ]
    assert {k for k, v in ack.payload.items() if v not in (None, "", [], {})} == {
        "delivery_id",
        "reason",
        "rows",
        "status",
    }


def test_an_unknown_kind_is_a_usage_error_that_lists_the_kinds(invoke):
    result = invoke("ledger", "show", "--kind", "disclosures", "--json")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "--kind 'disclosures' is not a kind of ledger entry; the kinds are: " in result.stderr
    listed = result.stderr.split("the kinds are: ")[1].split()
    assert {kind.rstrip(",") for kind in listed} == set(KINDS)


def test_an_unknown_flow_is_a_usage_error_and_a_configured_flow_without_entries_is_empty(tmp_path, invoke, home):
    unknown = invoke("ledger", "show", "--flow", "mash-referrals.Z")
    assert unknown.exit_code == 2
    assert (
        "--flow 'mash-referrals.Z': no such flow in the ledger or the config; flows: mash-referrals.A, "
        "mash-referrals.B" in unknown.stderr
    )

    for db in home.glob("ledger.*"):
        db.unlink()  # a new deployment: nothing recorded yet
    empty = invoke("ledger", "show", "--flow", "mash-referrals.B")
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.strip() == "no ledger entries for mash-referrals.B"
    assert invoke("ledger", "show", "--json").stdout == ""


def test_the_installed_command_prints_only_json_lines_on_stdout(home):
    """The console script as cron or a pipeline runs it: logs (the ledger opened, ...) stay on stderr."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from transfers.settings import PROJECT_ROOT

    env = {
        **os.environ,
        "TRANSFERS_HOME": str(home),
        "TRANSFERS_CONFIG_DIR": str(PROJECT_ROOT / "config"),
        "COLUMNS": "80",
    }
    command = Path(sys.executable).parent / "transfers"
    done = subprocess.run(
        [str(command), "ledger", "show", "--kind", "notice", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr
    shown = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["seq"] for e in shown] == [e.seq for e in _entries(home, kind="notice")] and len(shown) == 4
