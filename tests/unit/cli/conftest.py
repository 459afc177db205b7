"""A home whose ledger holds a real run's entries and the exchange that followed, for the reporting commands.

The first entries are the demo's ledger (``tests.support.demo_ledger``) as real runs of the project wrote
them (quality, privacy, pseudonym key, intents, disclosures, notices, archive, purges); the rest are recorded
through the typed records, as the receipt, certificate, hold and notice steps record them, between the
partners of the checked-in config (whose long ids are what a table must keep whole).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.support.demo_ledger import write_demo_ledger
from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import (
    Acknowledgement,
    DestructionCertified,
    Disclosure,
    LegalHold,
    Notice,
    NoticeConfirmed,
    Received,
    RemoteFile,
)
from transfers.receipt import delivery_id
from transfers.settings import PROJECT_ROOT

CS, SYP = "rotherham-childrens-services", "south-yorkshire-police"
AGREEMENT = "mash-referrals"
#: The exchange's entries, recorded after the run's: (flow, logical date, recipient) of each disclosure.
DISCLOSED = [
    ("mash-referrals.A", date(2026, 5, 1), SYP),
    ("mash-referrals.A", date(2026, 5, 20), SYP),
    ("mash-referrals.B", date(2026, 5, 2), CS),
]
RECEIVED_ID = delivery_id(AGREEMENT, "A", "2026-11-25", SYP)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'ledger.db'}"
    write_demo_ledger(home / "ledger.db")
    at = datetime(2026, 11, 26, 5, 0, tzinfo=UTC)
    with Ledger(url) as ledger:
        for flow, day, partner in DISCLOSED:
            ledger.record(
                Disclosure(
                    agreement=AGREEMENT,
                    flow=flow,
                    logical_date=day,
                    recipient=partner,
                    rows=5,
                    at=at - timedelta(hours=30),
                    host="sftp.south-yorkshire-police.example:22",
                    files=(RemoteFile(f"inbound/mash/{flow}_{day}.csv.pgp", 1234, "ab" * 32, "delivered"),),
                )
            )
        # The police's first delivery: rejected by their receipt, destroyed by their certificate.
        first_to_police = {
            "agreement": AGREEMENT,
            "flow": "mash-referrals.A",
            "logical_date": date(2026, 5, 1),
            "recipient": SYP,
            "delivery_id": delivery_id(AGREEMENT, "A", "2026-05-01", SYP),
        }
        ledger.record(
            Acknowledgement(
                **first_to_police,
                status="rejected",
                reason="column referral_reason missing from part 1",
                at=at,
            )
        )
        ledger.record(
            DestructionCertified(
                **first_to_police,
                certificate_sha256="ef" * 32,
                rows=5,
                destroyed_at="2032-05-01T02:00:00+00:00",
                at=at,
            )
        )
        ledger.record(
            Received(
                agreement=AGREEMENT,
                flow="mash-referrals.A",
                logical_date=date(2026, 11, 25),
                recipient=SYP,
                delivery_id=RECEIVED_ID,
                sender=CS,
                status="accepted",
                rows=4,
                at=at,
            )
        )
        ledger.record(
            LegalHold(
                agreement=AGREEMENT,
                action="add",
                scope="delivery",
                target=RECEIVED_ID,
                reason="case 2032/7: judicial review of the referral decision",
                by="ig-officer",
                at=at,
            )
        )
        for reference, partner in [("d22d80aa7c4f", SYP), ("0b5e7f1c2a9d", CS)]:
            ledger.record(
                Notice(
                    agreement=AGREEMENT,
                    flow="mash-referrals.A",
                    recipient=partner,
                    notice="withdrawal",
                    lookup="d" * 64,
                    occasion="withdrawn",
                    reference=reference,
                    at=at,
                )
            )
        ledger.record(
            NoticeConfirmed(
                agreement=AGREEMENT,
                flow="mash-referrals.A",
                recipient=SYP,
                reference="d22d80aa7c4f",
                notice="withdrawal",
                rows=2,
                confirmation_sha256="cd" * 32,
                signer_fingerprint="5" * 40,
                at=at,
            )
        )
    return home


@pytest.fixture
def invoke(home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """``invoke(*args, columns=300)``: the CLI on ``home`` in a terminal that wide, stdout and stderr apart."""

    def run(*args: str, columns: int = 300, party: str | None = None) -> Result:
        monkeypatch.setenv("TRANSFERS_HOME", str(home))
        monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
        monkeypatch.setenv("TRANSFERS_DESTRUCTION_GRACE_DAYS", "10")
        monkeypatch.setenv("COLUMNS", str(columns))
        if party:
            monkeypatch.setenv("TRANSFERS_PARTY", party)
        else:
            monkeypatch.delenv("TRANSFERS_PARTY", raising=False)
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return run
