"""Steps run out of order stop with a terminal ``StateError`` that names what to run first."""

from __future__ import annotations

import pytest

from transfers.errors import StateError

pytestmark = pytest.mark.integration


def test_delivering_before_encrypting_is_a_state_error_and_sends_nothing(world, sshd):
    """Real PostgreSQL ledger and sshd: the deliver step alone, with nothing encrypted for the partner."""
    from transfers.steps.deliver import deliver

    run = world.run("mash-referrals.A")
    recipient = run.recipient("south-yorkshire-police")
    with world.settings.open_ledger() as ledger:
        with pytest.raises(StateError, match="run the encrypt step first") as caught:
            deliver(run, world.resolvers(), ledger, recipient)
        assert list(ledger.entries(kind="disclosure")) == []
    # Terminal: the DAG fails the task at once rather than retrying, and the CLI exits 1.
    assert not caught.value.retriable and caught.value.exit_code == 1
    assert world.remote_names("inbound/mash") == []
