"""The privacy step counts every row it screens once, as sent or excluded under a reason, whatever the reason."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from transfers.agreement import load_config
from transfers.consent import SubjectLists
from transfers.privacy.step import Screening
from transfers.settings import Settings
from transfers.staging import Staging, new_staging_key

ROOT = Path(__file__).resolve().parents[3]
DAY = date(2026, 6, 2)


def screening_run(tmp_path: Path) -> SimpleNamespace:
    ref = load_config(ROOT / "config").flow("mash-referrals.B")
    # No register to read: the reasons come from the lists the test sets.
    flow = ref.flow.model_copy(update={"disclosure_risk": None, "consent": ref.flow.consent.model_copy(
        update={"consent_register": None, "opt_outs": None})})
    return SimpleNamespace(
        ref=SimpleNamespace(flow=flow, key="mash-referrals.B", agreement=SimpleNamespace(id="mash-referrals",
                                                                                        pseudonymisation=None)),
        logical_date=DAY, ds=DAY.isoformat(), settings=Settings(home=tmp_path / "state"),
        staging=Staging(tmp_path / "run", new_staging_key()),
    )


def test_an_exclusion_reason_not_known_here_is_counted_and_recorded(tmp_path, monkeypatch):
    # Another part of the pipeline may add reasons (a withdrawal notified to partners, say):
    # rows excluded under it must not drop out of the totals.
    reasons = {"9000000001": "withdrawn (notified)", "9000000002": "opted_out"}
    monkeypatch.setattr(SubjectLists, "reasons", lambda self, subjects: subjects.map(reasons.get).astype(object))
    run = screening_run(tmp_path)
    screening = Screening(run, key=None, lookup=None, connection=None)
    batch = pd.DataFrame({"nhs_number": ["9000000001", "9000000002", "9000000003", "9000000004"]}, dtype=object)

    kept = screening.screen(batch)
    screening.sent(kept, kept)
    ledger = run.settings.open_ledger()
    result = screening.finish(ledger)

    assert len(kept) == 2
    assert result["excluded"] == {"opted_out": 1, "withdrawn (notified)": 1}  # known reasons first
    (entry,) = ledger.entries(kind="privacy")
    assert entry.payload["rows_screened"] == 4 == sum(entry.payload["excluded"].values()) + entry.payload["rows_sent"]


def test_the_normal_forms_screen_made_are_reused_only_for_the_batch_it_returned(tmp_path):
    # Recording from screen's normal forms must record what normalising the batch again would.
    from transfers.privacy import apply_privacy

    batch = pd.DataFrame({"nhs_number": ["943 476 5919", " 9000000002", None, "9000000003 "]}, dtype=object)
    for name in screening_run(tmp_path).ref.flow.fields:
        batch[name] = batch.get(name, None)
    recorded = []
    for reuse in (True, False):
        run = screening_run(tmp_path / str(reuse))
        screening = Screening(run, key=b"k" * 32, lookup=b"l" * 32, connection=None)
        kept = screening.screen(batch)
        assert set(screening.normalised(kept)) == {"nhs_number"}
        assert screening.normalised(kept.copy()) == {}
        sent = kept if reuse else kept.copy()
        safe, _ = apply_privacy(sent, run.ref.flow, key=b"k" * 32, logical_date=DAY,
                                normalised=screening.normalised(sent))
        screening.sent(sent, safe)
        screening.staged.flush()  # the step's subjects reach the register at its end
        recorded.append((safe, screening.index.pseudonyms("prepared", screening.ref)))
        screening.close()

    (safe, pseudonyms), (safe_again, pseudonyms_again) = recorded
    assert safe.equals(safe_again)
    assert pseudonyms == pseudonyms_again == sorted(p for p in safe["nhs_number"].tolist() if p)
    assert len(pseudonyms) == 3
