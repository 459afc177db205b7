"""``TRANSFERS_WORK_STORE=/path``: a run's working files on a volume every worker mounts, and retention follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import LOGICAL_DATE
from transfers.pipeline import FlowRun, run_flow
from transfers.retention import execute_purge, plan_purge

pytestmark = pytest.mark.integration

FLOW = "mash-referrals.A"


def test_the_outbox_lives_on_the_shared_volume_and_the_purge_deletes_it_there(world, tmp_path):
    shared = tmp_path / "shared"
    settings = world.settings.model_copy(update={"work_store": str(shared)})
    run = FlowRun(settings, world.config, world.config.flow(FLOW), LOGICAL_DATE, staging_key=world.staging_key)

    assert run_flow(run, world.resolvers())["status"] == "delivered"

    outbox = sorted(p for p in (shared / "outbox").rglob("*") if p.is_file())
    assert [p.name for p in outbox] == [f"mash-referrals_A_{LOGICAL_DATE}{suffix}"
                                        for suffix in (".csv.pgp", ".manifest.json", ".manifest.json.asc")]
    assert not (settings.home / "outbox").exists() and not (settings.home / "runs").exists()

    later = datetime.now(UTC) + timedelta(days=400)
    with settings.open_ledger() as ledger:
        items = [i for i in plan_purge(settings, world.config, ledger, now=later, only_flow=FLOW)
                 if i.place == "outbox"]
        report = execute_purge(items, settings, world.config, ledger, world.resolvers().connection, now=later)

    assert sorted(i.path for i in items) == [str(p) for p in outbox]
    assert report.failed == [] and report.deleted == len(outbox)
    assert not [p for p in (shared / "outbox").rglob("*") if p.is_file()]
