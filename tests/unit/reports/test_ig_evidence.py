"""The IG report's evidence sections from a real (SQLite) ledger: a retried run counted once, a reason no
column knows kept in the total, notices by where their confirmations stand, key ids across a rotation."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from transfers.agreement import load_config
from transfers.ledger import Ledger
from transfers.ledger.records import (
    Disclosure,
    Notice,
    NoticeConfirmationRefused,
    NoticeConfirmed,
    PrivacyResult,
    PseudonymKey,
)
from transfers.reports.ig_evidence import evidence
from transfers.settings import PROJECT_ROOT, Settings

A, B = "mash-referrals.A", "mash-referrals.B"
SYP, CS = "south-yorkshire-police", "rotherham-childrens-services"
DAY, NEXT = date(2026, 11, 19), date(2026, 11, 20)
SINCE, UNTIL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
OLD_KEY = "mash-2025-10"  # the project's sample agreement names mash-2026-04 now


@pytest.fixture
def world(tmp_path):
    config = load_config(PROJECT_ROOT / "config", today=NEXT)
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config")
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}", anchor_path=tmp_path / "ledger.head") as ledger:
        yield settings, config, ledger


def _privacy(flow: str, day: date, excluded: dict[str, int], sent: int) -> PrivacyResult:
    return PrivacyResult(
        agreement="mash-referrals",
        flow=flow,
        logical_date=day,
        excluded=excluded,
        basis="consent",
        rows_screened=sent + sum(excluded.values()),
        rows_sent=sent,
    )


def test_a_retried_night_counts_once_with_its_last_screening_and_an_unknown_reason_stays_in_the_total(world):
    settings, config, ledger = world
    ledger.record(_privacy(B, DAY, {"withdrawn": 3}, 27))  # an attempt that failed after screening
    ledger.record(_privacy(B, DAY, {"withdrawn": 4, "opted_out": 1}, 25))  # the retry that was sent
    ledger.record(_privacy(B, NEXT, {"deceased": 2, "future-reason": 1}, 27))

    doc = evidence(settings, config, ledger, SINCE, UNTIL)

    [row] = doc["consent_exclusions"]
    assert (row["runs"], row["withdrawn"], row["opted_out"], row["deceased"], row["other"]) == (2, 4, 1, 2, 1)
    assert (row["excluded"], row["rows_sent"], row["rows_screened"]) == (8, 52, 60)
    assert doc["evidence_totals"]["excluded"] == 8 and doc["evidence_totals"]["excluded_by_reason"]["other"] == 1
    [seen] = [b for b in doc["flow_bases"] if b["flow"] == B]
    assert (seen["runs"], seen["runs_consent"]) == (2, 2)


def test_notices_are_counted_by_where_their_confirmations_stand(world):
    settings, config, ledger = world
    for n, (kind, occasion) in enumerate((("withdrawal", "withdrawn"), ("correction", "R1"), ("correction", "R2"))):
        ledger.record(
            Notice(
                agreement="mash-referrals",
                flow=A,
                recipient=SYP,
                notice=kind,
                lookup=f"l{n}",
                occasion=occasion,
                fields=("risk_level",) if kind == "correction" else (),
                reference=f"ref{n}",
            )
        )
    ledger.record(
        NoticeConfirmed(
            agreement="mash-referrals", flow=A, recipient=SYP, reference="ref1", notice="correction", rows=3
        )
    )
    ledger.record(
        NoticeConfirmationRefused(
            agreement="mash-referrals", flow=A, recipient=SYP, reference="ref2", reason="signature did not verify"
        )
    )

    doc = evidence(settings, config, ledger, SINCE, UNTIL)

    rows = {r["notice"]: r for r in doc["notices"]}
    assert (rows["withdrawal"]["sent"], rows["withdrawal"]["unconfirmed"]) == (1, 1)
    states = ("sent", "confirmed", "refused", "unconfirmed", "rows_confirmed", "fields")
    assert {k: rows["correction"][k] for k in states} == dict(zip(states, (2, 1, 1, 0, 3, ["risk_level"]), strict=True))
    totals = ("withdrawal_notices", "correction_notices", "notices_confirmed", "notices_unconfirmed")
    assert [doc["evidence_totals"][k] for k in totals] == [1, 2, 1, 2]


def test_key_ids_across_a_rotation_are_listed_per_flow_without_the_key(world):
    settings, config, ledger = world
    ledger.record(
        PseudonymKey(
            agreement="mash-referrals",
            flow=A,
            logical_date=DAY,
            domain="mash-referrals",
            key_id=OLD_KEY,
            key_fingerprint="a" * 16,
        )
    )
    ledger.record(
        Disclosure(
            agreement="mash-referrals", flow=A, logical_date=DAY, recipient=SYP, rows=5, pseudonym_key_id=OLD_KEY
        )
    )
    ledger.record(
        PseudonymKey(
            agreement="mash-referrals",
            flow=A,
            logical_date=NEXT,
            domain="mash-referrals",
            key_id="mash-2026-04",
            key_fingerprint="b" * 16,
            event="rotation",
            previous={"domain": "mash-referrals", "key_id": OLD_KEY, "key_fingerprint": "a" * 16},
        )
    )
    ledger.record(
        Disclosure(
            agreement="mash-referrals",
            flow=A,
            logical_date=NEXT,
            recipient=SYP,
            rows=5,
            pseudonym_key_id="mash-2026-04",
        )
    )

    doc = evidence(settings, config, ledger, SINCE, UNTIL)

    keys = {(k["flow"], k["key_id"]): k for k in doc["pseudonym_keys"]}
    assert (keys[(A, OLD_KEY)]["configured"], keys[(A, OLD_KEY)]["disclosures"]) == (False, 1)
    assert (keys[(A, "mash-2026-04")]["configured"], keys[(A, "mash-2026-04")]["disclosures"]) == (True, 1)
    assert (keys[(B, "mash-2026-04")]["configured"], keys[(B, "mash-2026-04")]["disclosures"]) == (True, 0)
    assert [(e["event"], e["key_id"], e["previous_key_id"]) for e in doc["pseudonym_key_events"]] == [
        ("first-use", OLD_KEY, ""),
        ("rotation", "mash-2026-04", OLD_KEY),
    ]
    assert doc["evidence_totals"]["key_ids"] == sorted([OLD_KEY, "mash-2026-04"])
    assert "a" * 16 not in repr(doc) and "b" * 16 not in repr(doc)
    [check] = doc["ledger_verification"]
    assert (check["status"], check["head_seq"]) == ("verified", 4)


@pytest.mark.parametrize("resolver", ["none", "environment"])
def test_an_s3_archive_whose_connection_is_not_resolvable_is_listed_as_not_checked(
    tmp_path, world, monkeypatch, resolver
):
    import shutil

    from transfers.connections import env_connection

    settings, _config, ledger = world
    shutil.copytree(PROJECT_ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "agreements" / "mash-referrals.yaml"
    path.write_text(
        path.read_text().replace(
            "archive: {period: P6M, dir: archive}",
            "archive: {period: P6M, bucket: mash-archive, connection: archive_s3}",
            1,
        )
    )
    config = load_config(tmp_path / "config", today=NEXT)
    ledger.record(_privacy(B, DAY, {}, 30))

    monkeypatch.delenv("AIRFLOW_CONN_ARCHIVE_S3", raising=False)  # not set on this machine
    connection = env_connection if resolver == "environment" else None
    [check] = evidence(settings, config, ledger, SINCE, UNTIL, connection=connection)["ledger_verification"]

    assert (check["status"], check["head_seq"], check["manifest_heads"]) == ("verified", 1, 0)
    [line] = check["not_checked"]
    assert "archived manifests not read" in line and "archive_s3" in line
