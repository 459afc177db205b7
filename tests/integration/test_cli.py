"""The CLI as an IG officer or data engineer uses it: ledger verify, purge, run, validate."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tests.integration.conftest import LOGICAL_DATE
from transfers.cli import app
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration


def test_run_from_the_cli_delivers_and_reports(cli, world):
    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 0, result.output
    assert "south-yorkshire-police: delivered" in result.output
    assert len(world.delivered("inbound/mash")) == 1


def test_ledger_verify_passes_fresh_and_names_the_entry_edited_by_hand(cli, world):
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    ok = cli("ledger", "verify")
    assert ok.exit_code == 0, ok.output
    assert "ledger ok" in ok.output

    db = sqlite3.connect(world.settings.home / "ledger.db")
    disclosure_seq = db.execute("SELECT seq FROM ledger_entries WHERE kind = 'disclosure'").fetchone()[0]
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')  # someone with database access removes the guard
    edited = db.execute("UPDATE ledger_entries SET payload = replace(payload, '\"rows\":40', '\"rows\":4') "
                        "WHERE seq = ?", (disclosure_seq,))
    assert edited.rowcount == 1
    db.commit()
    db.close()

    bad = cli("ledger", "verify")
    assert bad.exit_code == 3
    assert f"entry {disclosure_seq}: hash does not match its contents" in bad.output


def test_purge_dry_run_lists_what_is_due_and_purge_deletes_it_everywhere_with_evidence(cli, world):
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    outbox = sorted((world.settings.home / "outbox").rglob("*.pgp"))
    remote = world.delivered("inbound/mash")
    assert outbox and remote

    # Within every period: nothing is due.
    assert "nothing is due" in cli("purge", "--dry-run").output

    later = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()  # past staging P7D and remote P14D
    listed = cli("purge", "--dry-run", "--as-of", later)
    assert listed.exit_code == 0
    assert "outbox" in listed.output and "remote" in listed.output
    assert all(p.exists() for p in outbox + remote)  # a dry run deletes nothing

    done = cli("purge", "--as-of", later)
    assert done.exit_code == 0, done.output
    assert not any(p.exists() for p in outbox + remote)
    purges = list(world.settings.open_ledger().entries(kind="purge"))
    places = {e.payload["place"] for e in purges}
    assert {"outbox", "remote"} <= places
    for entry in purges:
        assert entry.payload["sha256"] and entry.payload["deleted_at"] and entry.payload["rule"]
    # Reports (P90D) are not yet due and are kept.
    assert list((world.settings.home / "reports").rglob("*.html"))


def test_a_failed_remote_deletion_is_reported_and_retried_next_time(cli, world):
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    remote = world.delivered("inbound/mash")
    later = (datetime.now(UTC) + timedelta(days=20)).date().isoformat()
    up = world.connections["syp_sftp"]
    world.connections["syp_sftp"] = dataclasses.replace(up, port=1)  # the partner's server is down

    failed = cli("purge", "--as-of", later)
    assert failed.exit_code == 1  # failed deletions fail the purge; they stay due and are retried
    assert "will retry" in failed.output
    assert all(p.exists() for p in remote)

    world.connections["syp_sftp"] = up
    retried = cli("purge", "--as-of", later)
    assert retried.exit_code == 0, retried.output
    assert not any(p.exists() for p in remote)


def test_validate_accepts_the_world_and_refuses_a_key_that_does_not_match_its_pin(cli, world):
    assert cli("validate").exit_code == 0
    other = world.settings.keys / "south-yorkshire-police.asc"
    other.write_text("")  # the key file was emptied by mistake
    result = cli("validate")
    assert result.exit_code == 2
    assert "south-yorkshire-police.asc" in result.output


def test_validate_refuses_a_receipt_wait_longer_than_a_dag_run_may_last(cli, world):
    import yaml

    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    data["flows"][0]["receipt_within"] = "P1D"  # a DAG run stops at 20 h by default: the wait could never end
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    result = cli("validate")
    assert result.exit_code == 2
    assert "flow A: receipt_within P1D is not shorter than a DAG run may last" in result.output
    assert "TRANSFERS_RUN_TIMEOUT_HOURS=20" in result.output


def test_run_refuses_a_flow_this_party_does_not_send(cli, world, monkeypatch):
    monkeypatch.setenv("TRANSFERS_PARTY", "south-yorkshire-police")
    result = cli("run", "mash-referrals.A")
    assert result.exit_code == 2
    assert "sent by rotherham-childrens-services, not by this deployment" in result.output
    assert "transfers receive" in result.output
    assert not world.delivered("inbound/mash")


def _host_key_line() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_project_config_validates_with_committed_keys():
    runner = CliRunner()
    env = {k: None for k in os.environ if k.startswith("TRANSFERS_")}
    # validate also checks each id resolves (not what it holds): placeholders stand in for the deployment's,
    # and an SFTP connection must pin a well-formed host key (a public key made now, no server behind it).
    env |= {f"AIRFLOW_CONN_{conn_id.upper()}": "fs://placeholder" for conn_id in ("cs_case_db", "rft_exports")}
    env |= {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps({"conn_type": "sftp", "host": "sftp.partner.example",
                                                            "extra": {"host_key": _host_key_line()}})
            for conn_id in ("syp_sftp", "cs_sftp")}
    env["AIRFLOW_VAR_MASH_PSEUDONYM_KEY"] = "placeholder"
    env["AIRFLOW_VAR_TRANSFERS_SIGNING_KEY"] = "placeholder"
    result = runner.invoke(app, ["validate", "--as-of", "2026-11-24"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_json_output_of_a_real_run_is_what_the_ledger_and_the_reports_hold(cli, world, monkeypatch):
    results = run_flow(world.run("mash-referrals.A"), world.resolvers())
    today = datetime.now(UTC).date()
    with world.settings.open_ledger() as ledger:
        stored = list(ledger.entries())

    shown = cli("ledger", "show", "--json")
    assert shown.exit_code == 0, shown.output
    entries = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [(e["seq"], e["kind"], e["hash"], e["payload"]) for e in entries] == [
        (e.seq, e.kind, e.hash, e.payload) for e in stored]
    [disclosed] = [json.loads(line) for line in cli("ledger", "show", "--kind", "disclosure", "--flow",
                                                    "mash-referrals.A", "--json").stdout.splitlines()]
    assert disclosed["payload"]["rows"] == results["prepare"]["rows_out"]
    assert disclosed["recipient"] == "south-yorkshire-police"

    quality = cli("report", "quality", "mash-referrals.A", "--json")
    assert quality.exit_code == 0, quality.output
    [doc] = [json.loads(line) for line in quality.stdout.splitlines()]
    assert doc["flow"] == "mash-referrals.A" and doc["scorecard"]["rows"] == results["extract"]["rows"]
    assert doc["scorecard"]["logical_date"] == LOGICAL_DATE.isoformat()
    assert set(doc["scorecard"]["dimensions"]) == {"accuracy", "validity", "reliability", "timeliness", "relevance",
                                                   "completeness"}
    assert doc["files"]["scorecard"].endswith(".html") and os.path.isfile(doc["files"]["scorecard"])

    monkeypatch.setenv("COLUMNS", "80")
    summary = cli("report", "quality", "mash-referrals.A").stdout.splitlines()
    monkeypatch.delenv("COLUMNS")
    for name, counts in doc["scorecard"]["dimensions"].items():  # one line each, in 80 columns, figures whole
        [line] = [line for line in summary if line.startswith(f"  {name} ")]
        assert len(line) <= 80 and line.split()[1:3] == [str(counts["checks"]), str(counts["failed"])]
        assert line.split()[-2:] == [counts["policy"], counts["outcome"]]

    ig = cli("report", "ig", "--from", today.isoformat(), "--to", today.isoformat(), "--json")
    assert ig.exit_code == 0, ig.output
    [report] = [json.loads(line) for line in ig.stdout.splitlines()]
    assert report["totals"]["disclosures"] == 1 and report["totals"]["rows"] == results["prepare"]["rows_out"]
    assert all(os.path.isfile(path) for path in report["files"]) and report["files"][0].endswith(".html")
