"""Steps run out of order stop with a terminal ``StateError`` that names what to run first."""

from __future__ import annotations

import pytest

from transfers.errors import StateError

pytestmark = pytest.mark.integration


def test_delivering_before_packaging_is_a_state_error_and_sends_nothing(world, sshd):
    """Real PostgreSQL ledger and sshd: the deliver step alone, with nothing packaged for the partner."""
    from transfers.delivery import SftpTarget
    from transfers.pipeline import deliver

    run = world.run("mash-referrals.A")
    recipient = run.recipient("south-yorkshire-police")
    target = SftpTarget.from_connection(world.resolvers().connection("syp_sftp"), recipient)
    with world.settings.open_ledger() as ledger:
        with pytest.raises(StateError, match="run the package step first") as caught:
            deliver(run, "south-yorkshire-police", target, ledger)
        assert list(ledger.entries(kind="disclosure")) == []
    # Terminal: the DAG fails the task at once rather than retrying, and the CLI exits 1.
    assert not caught.value.retriable and caught.value.exit_code == 1
    assert world.remote_names("inbound/mash") == []
