"""Every DAG file imports cleanly and the factory builds one DAG per flow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transfers.agreement import load_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dagbag(tmp_path_factory):
    os.environ.setdefault("AIRFLOW_HOME", str(tmp_path_factory.mktemp("airflow-home")))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}


def test_one_dag_per_flow_plus_retention(dagbag):
    config = load_config(ROOT / "config")
    expected = {ref.key for ref in config.flows()} | {"isp-retention"}
    assert set(dagbag.dag_ids) == expected


def test_flow_dag_has_a_task_per_stage_and_per_recipient(dagbag):
    config = load_config(ROOT / "config")
    ref = config.flow("mash-referrals.A")
    dag = dagbag.dags[ref.key]
    ids = {t.task_id for t in dag.tasks}
    assert {"check_agreement", "extract", "quality", "prepare", "cleanup"} <= ids
    for recipient in ref.flow.to:
        assert f"encrypt_{recipient.partner}" in ids
        assert f"deliver_{recipient.partner}" in ids
    # Delivery can be retried alone: it depends on its own recipient's seal (the signed manifest) only.
    deliver = dag.get_task(f"deliver_{ref.flow.to[0].partner}")
    assert deliver.upstream_task_ids == {f"seal_{ref.flow.to[0].partner}"}
    # Working files are removed whatever happened upstream, without the cleanup
    # deciding the run's state (a plain all_done leaf would turn a failed run green).
    cleanup = dag.get_task("cleanup")
    assert cleanup.is_teardown and not cleanup.on_failure_fail_dagrun
    assert {t.task_id for t in dag.leaves} == {"cleanup", *_waits(ref)}


def test_the_tasks_are_the_step_list_one_per_recipient_for_a_per_recipient_step(dagbag):
    from transfers.pipeline import STEPS

    config = load_config(ROOT / "config")
    for ref in config.flows():
        expected = {i for step in STEPS if step.per_recipient for r in ref.flow.to for i in step.task_ids(r.partner)}
        expected |= {i for step in STEPS if not step.per_recipient for i in step.task_ids()}
        assert {t.task_id for t in dagbag.dags[ref.key].tasks} == expected


def test_each_recipient_s_encryption_is_a_plan_a_mapped_task_per_part_and_a_seal_before_its_delivery(dagbag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    for ref in load_config(ROOT / "config").flows():
        dag = dagbag.dags[ref.key]
        for recipient in ref.flow.to:
            p = recipient.partner
            plan, part, seal = (dag.get_task(i) for i in (f"encrypt_{p}", f"encrypt_{p}_part", f"seal_{p}"))
            assert plan.upstream_task_ids == {"prepare_seal"} and not isinstance(plan, MappedOperator)
            # One task instance per planned part, named in the grid by its file.
            assert isinstance(part, MappedOperator) and part.upstream_task_ids == {f"encrypt_{p}"}
            assert part.map_index_template == "{{ part_name }}"
            # The seal sees the plan and every part; it runs when the plan found the outbox sealed (no parts,
            # the mapped task skipped), never after a failure; the delivery only after the seal succeeded.
            assert seal.upstream_task_ids == {f"encrypt_{p}", f"encrypt_{p}_part"}
            assert seal.trigger_rule == "none_failed"
            deliver = dag.get_task(f"deliver_{p}")
            assert deliver.upstream_task_ids == {f"seal_{p}"} and deliver.trigger_rule == "all_success"


@pytest.mark.parametrize("step, before, after", [("quality", "extract", "prepare"),
                                                  ("prepare", "quality_seal", "encrypt_rotherham-childrens-services")])
def test_quality_and_prepare_are_each_a_plan_a_mapped_task_per_range_and_a_seal(dagbag, step, before, after):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    ref = load_config(ROOT / "config").flow("mash-referrals.B")
    dag = dagbag.dags[ref.key]
    plan, part, seal = (dag.get_task(i) for i in (step, f"{step}_part", f"{step}_seal"))
    assert plan.upstream_task_ids == {before} and not isinstance(plan, MappedOperator)
    assert isinstance(part, MappedOperator) and part.upstream_task_ids == {step}
    assert part.map_index_template == "{{ part_name }}"
    # What needs every row (uniqueness, the scorecard, a block; k, the privacy entries) is the seal's:
    # the next step waits for it alone.
    assert seal.upstream_task_ids == {step, f"{step}_part"} and seal.trigger_rule == "none_failed"
    assert dag.get_task(after).upstream_task_ids == {f"{step}_seal"}


def _dags_with(monkeypatch, step, before: str) -> dict:
    """Every DAG the DAG file builds with ``step`` put into ``pipeline.STEPS`` before the step named ``before``."""
    import runpy

    from transfers import pipeline

    names = [s.name for s in pipeline.STEPS]
    steps = list(pipeline.STEPS)
    steps.insert(names.index(before), step)
    monkeypatch.setattr(pipeline, "STEPS", tuple(steps))
    module = runpy.run_path(str(ROOT / "dags" / "isp_transfers.py"))
    return {v.dag_id: v for v in module.values() if type(v).__name__ == "DAG"}


def _fake(run, resolvers, ledger, recipient=None):  # the step list's signature; never run here
    return {}


def test_a_step_added_to_the_list_is_a_new_task_in_its_place(monkeypatch):
    from transfers.pipeline import Step

    dags = _dags_with(monkeypatch, Step("count_rows", _fake, "counting rows"), before="quality")

    dag = dags["mash-referrals.A"]
    added = dag.get_task("count_rows")
    assert added.upstream_task_ids == {"extract"}
    assert dag.get_task("quality").upstream_task_ids == {"count_rows"}
    assert {t.task_id for t in dag.leaves} == {"cleanup", *_waits(load_config(ROOT / "config").flow("mash-referrals.A"))}


def test_a_per_recipient_step_added_to_the_list_is_a_task_per_recipient_in_its_chain(monkeypatch):
    from transfers.pipeline import Step

    dags = _dags_with(monkeypatch, Step("sign", _fake, "signing for {partner}", per_recipient=True), before="deliver")

    config = load_config(ROOT / "config")
    for ref in config.flows():
        dag = dags[ref.key]
        for recipient in ref.flow.to:
            p = recipient.partner
            assert dag.get_task(f"sign_{p}").upstream_task_ids == {f"seal_{p}"}
            assert dag.get_task(f"deliver_{p}").upstream_task_ids == {f"sign_{p}"}
        assert {t.task_id for t in dag.leaves} == {"cleanup", *_waits(ref)}


def _waits(ref) -> set[str]:
    """The receipt sensors: leaves beside the run (nothing waits for them), one per recipient."""
    return {f"await_receipt_{r.partner}" for r in ref.flow.to}


def test_each_recipient_s_receipt_is_awaited_by_a_reschedule_sensor_after_its_delivery(dagbag):
    from datetime import UTC, datetime

    from transfers.settings import Settings

    settings = Settings()
    for ref in load_config(ROOT / "config").flows():
        dag = dagbag.dags[ref.key]
        start = datetime(2000, 1, 1, tzinfo=UTC)
        within = (ref.flow.receipt_within.after(start) - start).total_seconds()
        for recipient in ref.flow.to:
            sensor = dag.get_task(f"await_receipt_{recipient.partner}")
            assert sensor.upstream_task_ids == {f"deliver_{recipient.partner}"}
            assert sensor.downstream_task_ids == set()  # notify and cleanup do not wait a day for it
            assert sensor.mode == "reschedule"  # no worker slot held between looks
            assert sensor.poke_interval == settings.poke_seconds
            assert sensor.timeout == within + settings.poke_seconds
            assert not sensor.soft_fail  # overdue fails visibly


def test_every_task_and_run_has_a_time_limit_so_a_hung_night_never_blocks_the_next(dagbag):
    from datetime import timedelta

    from transfers.settings import Settings

    settings = Settings()
    for dag_id, dag in dagbag.dags.items():
        assert dag.dagrun_timeout is not None, dag_id
        # Under a day: a nightly run that hangs is failed before the next night is due.
        assert timedelta(0) < dag.dagrun_timeout < timedelta(days=1), dag_id
        assert dag.dagrun_timeout == timedelta(hours=settings.run_timeout_hours), dag_id
        for task in dag.tasks:
            assert task.execution_timeout is not None, f"{dag_id}.{task.task_id}"
            assert timedelta(0) < task.execution_timeout <= dag.dagrun_timeout, f"{dag_id}.{task.task_id}"


def test_dag_schedule_comes_from_the_agreement(dagbag):
    config = load_config(ROOT / "config")
    for ref in config.flows():
        dag = dagbag.dags[ref.key]
        assert dag.timetable.expression == ref.flow.schedule
        assert str(getattr(dag.timetable.timezone, "name", dag.timetable.timezone)) == ref.flow.timezone


def test_dag_file_reads_no_heavy_modules_at_parse_time():
    # Parsing must stay fast: GX, pgpy and paramiko load inside tasks only.
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path('dags/isp_transfers.py');"
        "heavy=[m for m in ('great_expectations','pgpy','paramiko','pandas') if m in sys.modules];"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}, check=True)
    assert "HEAVY=\n" in out.stdout + "\n", out.stdout


# --------------------------------------------------------------------------- one party's DAGs (TRANSFERS_PARTY)

PARTY_DAGS = {
    # The sample agreement: flow A goes from children's services to the police, flow B from the trust to
    # children's services.
    "rotherham-childrens-services": {"mash-referrals.A", "receive_mash-referrals.B"},
    "south-yorkshire-police": {"receive_mash-referrals.A"},
    "rotherham-nhs-ft": {"mash-referrals.B"},
}


def _party_dagbag(monkeypatch, tmp_path, party: str):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("TRANSFERS_PARTY", party)
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.mark.parametrize("party", sorted(PARTY_DAGS))
def test_a_party_gets_send_dags_for_its_flows_and_a_receive_dag_per_flow_to_it(monkeypatch, tmp_path, party):
    bag = _party_dagbag(monkeypatch, tmp_path, party)

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == PARTY_DAGS[party] | {"isp-retention"}
    for dag_id in PARTY_DAGS[party]:
        direction = "receive" if dag_id.startswith("receive_") else "send"
        assert {f"party:{party}", direction, "mash-referrals"} <= set(bag.dags[dag_id].tags), dag_id


def test_a_receive_dag_is_one_sensor_that_gives_its_slot_back_and_waits_receipt_within(monkeypatch, tmp_path):
    from datetime import timedelta

    bag = _party_dagbag(monkeypatch, tmp_path, "south-yorkshire-police")
    ref = load_config(ROOT / "config").flow("mash-referrals.A")
    dag = bag.dags["receive_mash-referrals.A"]

    assert [t.task_id for t in dag.tasks] == ["receive"]
    sensor = dag.get_task("receive")
    assert sensor.mode == "reschedule"
    assert str(ref.flow.receipt_within) == "PT12H"  # the sample's (default) period
    assert timedelta(seconds=sensor.timeout) == timedelta(hours=12)
    # The sender's schedule and clock; the run outlives its sensor's wait, and a waiting night holds no other back.
    assert dag.timetable.expression == ref.flow.schedule
    assert dag.dagrun_timeout is not None and dag.dagrun_timeout >= timedelta(seconds=sensor.timeout)
    assert dag.max_active_runs > 1
    assert sensor.execution_timeout is not None and sensor.execution_timeout <= dag.dagrun_timeout


def test_an_unknown_party_is_an_import_error_naming_it_and_the_signatories(monkeypatch, tmp_path):
    bag = _party_dagbag(monkeypatch, tmp_path, "rotherham-council")

    (error,) = bag.import_errors.values()
    assert "'rotherham-council' is not a Tier 1 signatory" in error
    assert "south-yorkshire-police" in error


def test_a_signatory_in_no_agreement_gets_no_flow_dags_and_a_warning(monkeypatch, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        bag = _party_dagbag(monkeypatch, tmp_path, "dwp")

    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"isp-retention"}
    assert "TRANSFERS_PARTY 'dwp': nothing to send or receive" in caplog.text


def _receive_poke(monkeypatch, tmp_path, outcome):
    """The receive DAG's poke for the police, with ``transfers.receive.run.receive`` doing ``outcome``."""
    import runpy
    from datetime import UTC, datetime

    import transfers.receive.run

    calls = []

    def fake(settings, config, ref, logical_date, resolvers, ledger, me):
        calls.append((ref.key, logical_date, me))
        return outcome()

    monkeypatch.setenv("TRANSFERS_PARTY", "south-yorkshire-police")
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(transfers.receive.run, "receive", fake)
    module = runpy.run_path(str(ROOT / "dags" / "isp_transfers.py"))
    # 01:00 UTC on 21 November is the 21st in London, the flow's clock.
    return module["_receive"]("mash-referrals.A", datetime(2026, 11, 21, 1, 0, tzinfo=UTC)), calls


def test_the_receive_poke_is_not_done_while_the_delivery_is_pending(monkeypatch, tmp_path):
    from datetime import date

    from transfers.errors import DeliveryPending

    def pending():
        raise DeliveryPending("no manifest yet")

    result, calls = _receive_poke(monkeypatch, tmp_path, pending)

    assert result.is_done is False
    assert calls == [("mash-referrals.A", date(2026, 11, 21), "south-yorkshire-police")]


def test_the_receive_poke_is_done_with_the_receipt_summary(monkeypatch, tmp_path):
    result, _calls = _receive_poke(monkeypatch, tmp_path, lambda: {"status": "accepted", "rows": 12})

    assert result.is_done is True and result.xcom_value == {"status": "accepted", "rows": 12}


def test_a_terminal_receive_error_fails_the_sensor_at_once_and_a_retriable_one_is_retried(monkeypatch, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from transfers.errors import DeliveryRejected, DeliveryUnavailable

    def rejected():
        raise DeliveryRejected("refused")

    def down():
        raise DeliveryUnavailable("inbox server down")

    with pytest.raises(AirflowFailException, match="refused"):
        _receive_poke(monkeypatch, tmp_path, rejected)
    with pytest.raises(DeliveryUnavailable):
        _receive_poke(monkeypatch, tmp_path, down)
