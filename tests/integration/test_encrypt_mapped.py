"""The encrypt step as the DAG runs it (plan, one task per part, seal), called in this process against real gpg and sshd.

The Airflow run of the same three phases, as mapped tasks, is in ``tests/integration/test_dag_run.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.test_encrypt_parallel import _expected_csv, _joined, _prepared
from transfers.errors import StateError
from transfers.staging import Staging

pytestmark = pytest.mark.integration


def _planned(world, *, max_rows: int = 15, batch_rows: int | None = 7):
    from transfers.steps.encrypt import plan_encrypt

    world.settings = world.settings.model_copy(update={"delivery_max_rows": max_rows})
    run, ledger, resolvers, recipient = _prepared(world, batch_rows=batch_rows)
    return run, ledger, resolvers, recipient, plan_encrypt(run, resolvers, ledger, recipient)


def _parts(run, ledger, resolvers, recipient, planned):
    from transfers.steps.encrypt import encrypt_part

    return [encrypt_part(run, resolvers, ledger, recipient, part) for part in planned]


def _remote_parts(world) -> list:
    return sorted(world.remote_root.rglob("*.pgp"))


def test_plan_parts_and_seal_make_the_delivery_encrypt_makes_with_one_manifest(world, gpg_partner):
    from transfers.steps.encrypt import seal_encrypt

    run, ledger, resolvers, recipient, planned = _planned(world)
    expected = _expected_csv(run)

    names = [f"{run.base_name}_part{i:03d}of003.csv.pgp" for i in (1, 2, 3)]
    assert planned == [{"index": i, "name": names[i], "start": 15 * i, "rows": rows}
                       for i, rows in enumerate([15, 15, 10])]
    made = _parts(run, ledger, resolvers, recipient, planned)
    outbox = run.outbox_dir(recipient)
    assert not (outbox / f"{run.base_name}.manifest.json").exists()  # parts alone are not a sealed outbox

    assert seal_encrypt(run, resolvers, ledger, recipient, planned, made) == {"files": 3, "rows": 40,
                                                                              "reused": False}
    manifest = json.loads((outbox / f"{run.base_name}.manifest.json").read_text())
    assert manifest["files"] == [dict(m) for m in made]
    assert [f["name"] for f in manifest["files"]] == names and manifest["rows"] == 40
    assert (outbox / f"{run.base_name}.manifest.json.asc").exists()
    assert _joined(gpg_partner, [outbox / n for n in names]) == expected


def test_a_part_task_opens_only_the_staging_parts_holding_its_rows(world, monkeypatch):
    from transfers.steps.encrypt import encrypt_part

    run, ledger, resolvers, recipient, planned = _planned(world, max_rows=15, batch_rows=7)  # 6 staging parts
    opened: list[str] = []
    real = Staging._read_part

    def spy(self, path):
        opened.append(path.name)
        return real(self, path)

    monkeypatch.setattr(Staging, "_read_part", spy)
    encrypt_part(run, resolvers, ledger, recipient, planned[2])  # rows 30-39: staging parts 4 (28-34) and 5

    assert opened == ["part-00004.arrow.gcm", "part-00005.arrow.gcm"]


@pytest.mark.parametrize("damage", ["altered", "missing", "extra"])
def test_a_part_altered_missing_or_extra_before_the_seal_stops_it_naming_the_part_and_nothing_is_delivered(
        world, damage):
    from transfers.steps.deliver import deliver
    from transfers.steps.encrypt import seal_encrypt

    run, ledger, resolvers, recipient, planned = _planned(world)
    made = _parts(run, ledger, resolvers, recipient, planned)
    outbox = run.outbox_dir(recipient)
    second = outbox / planned[1]["name"]
    if damage == "altered":
        data = bytearray(second.read_bytes())
        data[len(data) // 2] ^= 0x01
        second.write_bytes(bytes(data))
    elif damage == "missing":
        second.unlink()
    else:
        (outbox / f"{run.base_name}_part004of003.csv.pgp").write_bytes(second.read_bytes())

    with pytest.raises(StateError) as caught:
        seal_encrypt(run, resolvers, ledger, recipient, planned, made)

    named = f"{run.base_name}_part004of003.csv.pgp" if damage == "extra" else planned[1]["name"]
    assert named in str(caught.value)
    assert {"altered": "not the file its task wrote", "missing": "is missing",
            "extra": "was not planned"}[damage] in str(caught.value)
    assert not (outbox / f"{run.base_name}.manifest.json").exists()
    assert sorted(outbox.glob("*.pgp")) == []  # no unsealed part is left to be sent
    with pytest.raises(StateError, match="run the encrypt step first"):
        deliver(run, resolvers, ledger, recipient)
    assert _remote_parts(world) == []


def test_a_part_its_task_did_not_report_stops_the_seal(world):
    from transfers.steps.encrypt import seal_encrypt

    run, ledger, resolvers, recipient, planned = _planned(world)
    made = _parts(run, ledger, resolvers, recipient, planned)

    with pytest.raises(StateError, match=f"part {planned[0]['name']} was planned but no part task reported it"):
        seal_encrypt(run, resolvers, ledger, recipient, planned, made[1:])


def test_a_sealed_outbox_is_planned_as_nothing_and_reused_and_a_part_task_never_encrypts_it_again(world):
    from transfers.steps.encrypt import encrypt_part, plan_encrypt, seal_encrypt

    run, ledger, resolvers, recipient, planned = _planned(world)
    made = _parts(run, ledger, resolvers, recipient, planned)
    seal_encrypt(run, resolvers, ledger, recipient, planned, made)
    outbox = run.outbox_dir(recipient)
    before = {p.name: p.read_bytes() for p in outbox.iterdir() if p.is_file()}

    assert plan_encrypt(run, resolvers, ledger, recipient) == []
    assert seal_encrypt(run, resolvers, ledger, recipient, [], []) == {"files": 3, "rows": 40, "reused": True}
    assert encrypt_part(run, resolvers, ledger, recipient, planned[1]) == made[1]  # a cleared part task
    assert {p.name: p.read_bytes() for p in outbox.iterdir() if p.is_file()} == before


def test_a_new_plan_removes_the_parts_an_unsealed_attempt_left(world):
    from transfers.steps.encrypt import plan_encrypt

    run, ledger, resolvers, recipient, planned = _planned(world)
    _parts(run, ledger, resolvers, recipient, planned[:2])  # the third part's task failed; nothing sealed
    outbox = run.outbox_dir(recipient)
    assert len(list(outbox.glob("*.pgp"))) == 2

    assert plan_encrypt(run, resolvers, ledger, recipient) == planned
    assert list(outbox.glob("*.pgp")) == []


def test_a_part_the_stage_no_longer_names_is_refused(world):
    from transfers.steps.encrypt import encrypt_part

    run, ledger, resolvers, recipient, planned = _planned(world)
    world.settings = world.settings.model_copy(update={"delivery_max_rows": 10})  # changed since the plan
    run = world.run(run.ref.key)

    with pytest.raises(StateError, match=rf"part '{planned[1]['name']}' .* is not one the prepared stage names"):
        encrypt_part(run, resolvers, ledger, recipient, planned[1])
    assert list(run.outbox_dir(recipient).glob("*.pgp")) == []


# --------------------------------------------------------------------------- the DAG's part task and the run lock


def _dag_part_task(world, monkeypatch, run_id: str):
    """The DAG file's own wrapper (``_step``: run lock, run log, ledger) calling one part, outside Airflow.

    Airflow's task context and its Variables/Connections are stood in for (a dict with the DAG and run id,
    the world's secrets): a task context only exists inside a running task. The Airflow runs of the mapped
    tasks themselves are in ``tests/integration/test_dag_run.py``.
    """
    import importlib.util
    import types
    from datetime import UTC, datetime, time

    import airflow.sdk

    from tests.integration.conftest import LOGICAL_DATE
    from transfers.settings import PROJECT_ROOT

    for name, value in {"TRANSFERS_CONFIG_DIR": world.settings.config_dir, "TRANSFERS_KEYS_DIR": world.settings.keys,
                        "TRANSFERS_HOME": world.settings.home,
                        "TRANSFERS_DELIVERY_MAX_ROWS": world.settings.delivery_max_rows}.items():
        monkeypatch.setenv(name, str(value))
    path = PROJECT_ROOT / "dags" / "isp_transfers.py"
    spec = importlib.util.spec_from_file_location("isp_transfers_dag_under_test", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    resolvers = world.resolvers()
    monkeypatch.setattr(module, "_secret",
                        lambda name: world.staging_key if name == module.STAGING_KEY else resolvers.secret(name))
    monkeypatch.setattr(module, "_connection", resolvers.connection)
    context = {"dag": types.SimpleNamespace(dag_id="mash-referrals.A"), "run_id": run_id}
    monkeypatch.setattr(airflow.sdk, "get_current_context", lambda: context)
    [step] = [s for s in module.pipeline.STEPS if s.name == "encrypt"]
    noon = datetime.combine(LOGICAL_DATE, time(12), tzinfo=UTC)  # the same day on the flow's clock

    def call(part):
        return module._step("mash-referrals.A", noon, step, "south-yorkshire-police", step.mapped.part, part)

    return call


def test_a_part_task_joins_its_dag_run_s_lock_and_refuses_while_another_run_holds_it(world, monkeypatch):
    from transfers.errors import RunLocked
    from transfers.runlock import RunLocks, dag_owner

    run, ledger, resolvers, recipient, planned = _planned(world)
    ledger.close()
    outbox = run.outbox_dir(recipient)
    locks = RunLocks(world.settings.ledger_database)
    try:
        locks.acquire("mash-referrals.A", run.ds, dag_owner("mash-referrals.A", "other-run"))
        part_task = _dag_part_task(world, monkeypatch, "this-run")

        with pytest.raises(RunLocked, match="other-run"):
            part_task(planned[0])
        assert list(outbox.glob("*.pgp")) == []  # nothing written while another run holds (flow, date)

        locks.release("mash-referrals.A", run.ds, dag_owner("mash-referrals.A", "other-run"))
        locks.acquire("mash-referrals.A", run.ds, dag_owner("mash-referrals.A", "this-run"))  # as check_agreement
        made = part_task(planned[0])

        assert made["name"] == planned[0]["name"] and (outbox / planned[0]["name"]).exists()
        holder = locks.holder("mash-referrals.A", run.ds)
        assert holder is not None and holder.owner == dag_owner("mash-referrals.A", "this-run")  # joined, kept
    finally:
        locks.close()
