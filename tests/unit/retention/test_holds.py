"""Legal holds are ledger entries: placing, re-placing and lifting them, and what is in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from transfers.errors import ConfigError
from transfers.ledger import Ledger
from transfers.ledger.records import LegalHold
from transfers.retention.holds import active_holds, add_hold, current_user, lift_hold

AT = datetime(2032, 11, 20, 9, tzinfo=UTC)
ID = "mash-referrals:A:2026-11-25:south-yorkshire-police"


@pytest.fixture
def ledger(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as opened:
        yield opened


def test_a_hold_is_in_force_from_its_add_until_its_lift(ledger):
    placed = add_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason=" case 2032/7 ",
                      by="ig-officer", at=AT)
    add_hold(ledger, scope="subject", agreement="mash-referrals", target="p-1", reason="case 2032/8", at=AT)

    assert [(h.scope, h.target) for h in active_holds(ledger)] == [("delivery", ID), ("subject", "p-1")]
    assert (placed.reason, placed.by, placed.since, placed.seq) == ("case 2032/7", "ig-officer", AT, 1)
    assert placed.describe() == "legal hold on the delivery (ledger entry 1, by ig-officer, 2032-11-20): case 2032/7"
    assert active_holds(ledger)[1].by == current_user()

    lifted = lift_hold(ledger, scope="delivery", agreement="mash-referrals", target=ID, reason="closed", by="ig",
                       at=AT + timedelta(days=1))
    assert lifted.seq == 1
    assert [(h.scope, h.target) for h in active_holds(ledger)] == [("subject", "p-1")]
    records = list(ledger.records(LegalHold))
    assert [(r.action, r.scope, r.by) for r in records] == [("add", "delivery", "ig-officer"),
                                                            ("add", "subject", current_user()),
                                                            ("lift", "delivery", "ig")]
    assert records[-1].reason == "closed"


def test_placing_a_hold_again_replaces_its_reason_and_one_lift_ends_it(ledger):
    add_hold(ledger, scope="delivery", agreement="a", target=ID, reason="first", by="x", at=AT)
    add_hold(ledger, scope="delivery", agreement="a", target=ID, reason="second", by="y", at=AT)
    (hold,) = active_holds(ledger)
    assert (hold.reason, hold.by, hold.seq) == ("second", "y", 2)
    lift_hold(ledger, scope="delivery", agreement="a", target=ID, reason="done")
    assert active_holds(ledger) == []


def test_a_subject_hold_belongs_to_its_agreement(ledger):
    add_hold(ledger, scope="subject", agreement="a", target="p-1", reason="r")
    with pytest.raises(ConfigError, match="no legal hold is in force on that subject in agreement b"):
        lift_hold(ledger, scope="subject", agreement="b", target="p-1", reason="r")
    assert len(active_holds(ledger)) == 1


@pytest.mark.parametrize("scope, target, reason, problem", [
    ("flow", ID, "r", "use one of delivery, subject"),
    ("delivery", " ", "r", "name the delivery"),
    ("subject", "p-1", "  ", "give a reason"),
])
def test_a_hold_needs_a_scope_a_target_and_a_reason(ledger, scope, target, reason, problem):
    with pytest.raises(ConfigError, match=problem):
        add_hold(ledger, scope=scope, agreement="a", target=target, reason=reason)
    assert list(ledger.records(LegalHold)) == []
