"""``transfers run`` runs ``pipeline.STEPS`` in order: fake steps stand in for the real ones (no source, no SFTP)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from transfers import pipeline
from transfers.agreement import FlowRef, Recipient, load_config
from transfers.errors import DeliveryUnavailable
from transfers.pipeline import FlowRun, Resolvers, Step
from transfers.settings import PROJECT_ROOT, Settings
from transfers.staging import new_staging_key

DAY = date(2026, 5, 1)


@pytest.fixture
def run(tmp_path) -> FlowRun:
    """Flow A of the sample agreement, sent to two partners, with its state under ``tmp_path``."""
    config = load_config(PROJECT_ROOT / "config")
    ref = config.flow("mash-referrals.A")
    first = ref.flow.to[0]
    flow = ref.flow.model_copy(update={"to": [first, first.model_copy(update={"partner": "second-partner"})]})
    settings = Settings(home=tmp_path / "home", config_dir=PROJECT_ROOT / "config")
    return FlowRun(settings, config, FlowRef(ref.agreement, flow, ref.path), DAY, staging_key=new_staging_key(),
                   today=DAY)


def _resolvers() -> Resolvers:
    def nothing(name: str) -> Any:  # the fake steps resolve nothing
        raise AssertionError(name)

    return Resolvers(nothing, nothing)


def _fakes(calls: list[str], *, pending: list[str] | None = None, fail: str | None = None) -> tuple[Step, ...]:
    def step(name: str) -> Callable[..., dict]:
        def function(run: FlowRun, resolvers: Resolvers, ledger: object, recipient: Recipient | None = None) -> dict:
            key = name if recipient is None else f"{name}_{recipient.partner}"
            calls.append(key)
            assert ledger is not None and isinstance(resolvers, Resolvers)
            if key == fail:
                raise DeliveryUnavailable(f"{key} failed")
            if name == "gate":
                return {"live": True, "pending": [r.partner for r in run.ref.flow.to] if pending is None else pending}
            return {"step": key}

        return function

    return (
        Step("gate", step("gate"), "gate", gate=True, lock="take"),
        Step("first", step("first"), "first"),
        Step("seal", step("seal"), "sealing for {partner}", per_recipient=True),
        Step("send", step("send"), "sending to {partner}", per_recipient=True),
        Step("after", step("after"), "after"),
        Step("tidy", step("tidy"), "tidy", teardown=True, lock="release"),
    )


def test_run_flow_runs_the_step_list_in_order_one_chain_per_recipient_and_the_teardown_last(run, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "STEPS", _fakes(calls))
    said: list[str] = []

    results = pipeline.run_flow(run, _resolvers(), progress=said.append)

    partner = run.ref.flow.to[0].partner
    assert calls == ["gate", "first", f"seal_{partner}", f"send_{partner}", "seal_second-partner",
                     "send_second-partner", "after", "tidy"]
    assert results["status"] == "delivered"
    # Each result under its step's key, the task id the DAG gives it.
    assert {k for k in results if k != "status"} == set(calls)
    assert results["send_second-partner"] == {"step": "send_second-partner"}
    assert "sending to second-partner" in said


def test_a_gate_with_nobody_pending_stops_the_run_but_not_its_teardown(run, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "STEPS", _fakes(calls, pending=[]))

    results = pipeline.run_flow(run, _resolvers())

    assert calls == ["gate", "tidy"]
    assert results["status"] == "already-delivered"


def test_per_recipient_steps_run_only_for_the_recipients_the_gate_says_are_pending(run, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "STEPS", _fakes(calls, pending=["second-partner"]))

    pipeline.run_flow(run, _resolvers())

    assert calls == ["gate", "first", "seal_second-partner", "send_second-partner", "after", "tidy"]


def _with_wait(calls: list[str], pending_looks: dict[str, int]) -> tuple[Step, ...]:
    """The fakes plus a wait step that is pending ``pending_looks[partner]`` times, then done."""
    from transfers.errors import ReceiptPending

    def wait(run: FlowRun, resolvers: Resolvers, ledger: object, recipient: Recipient) -> dict:
        key = f"wait_{recipient.partner}"
        calls.append(key)
        if pending_looks.get(recipient.partner, 0) > 0:
            pending_looks[recipient.partner] -= 1
            raise ReceiptPending(f"no receipt from {recipient.partner} yet; 3h left")
        return {"status": "acknowledged"}

    steps = list(_fakes(calls))
    steps.insert(4, Step("wait", wait, "waiting for {partner}", per_recipient=True, wait=True))
    return tuple(steps)


def test_a_wait_step_runs_only_when_asked(run, monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(pipeline, "STEPS", _with_wait(calls, {}))

    pipeline.run_flow(run, _resolvers())

    assert not [c for c in calls if c.startswith("wait")]
    partner = run.ref.flow.to[0].partner
    # Not in the recipient's chain either: the chain is seal then send, as without it.
    assert calls == ["gate", "first", f"seal_{partner}", f"send_{partner}", "seal_second-partner",
                     "send_second-partner", "after", "tidy"]


def test_waiting_polls_each_pending_recipient_after_the_run_until_done(run, monkeypatch):
    calls: list[str] = []
    partner = run.ref.flow.to[0].partner
    monkeypatch.setattr(pipeline, "STEPS", _with_wait(calls, {"second-partner": 2}))
    slept: list[float] = []
    said: list[str] = []

    results = pipeline.run_flow(run, _resolvers(), wait_receipt=True, poll=7, sleep=slept.append,
                                progress=said.append)

    assert calls[calls.index("tidy") + 1:] == [f"wait_{partner}", "wait_second-partner", "wait_second-partner",
                                               "wait_second-partner"]
    assert slept == [7, 7]
    assert results["wait_second-partner"] == {"status": "acknowledged"}
    assert "no receipt from second-partner yet; 3h left" in said  # the progress says how long is left


def test_a_wait_that_fails_ends_the_wait_with_its_error(run, monkeypatch):
    from transfers.errors import ReceiptOverdue

    calls: list[str] = []

    def overdue(run: FlowRun, resolvers: Resolvers, ledger: object, recipient: Recipient) -> dict:
        raise ReceiptOverdue("no receipt within P1D")

    steps = list(_fakes(calls))
    steps.insert(4, Step("wait", overdue, "waiting for {partner}", per_recipient=True, wait=True))
    monkeypatch.setattr(pipeline, "STEPS", tuple(steps))

    with pytest.raises(ReceiptOverdue):
        pipeline.run_flow(run, _resolvers(), wait_receipt=True, sleep=lambda _s: None)


def test_a_failed_step_stops_the_run_and_the_teardown_still_runs(run, monkeypatch):
    calls: list[str] = []
    partner = run.ref.flow.to[0].partner
    monkeypatch.setattr(pipeline, "STEPS", _fakes(calls, fail=f"send_{partner}"))

    with pytest.raises(DeliveryUnavailable):
        pipeline.run_flow(run, _resolvers())

    assert calls == ["gate", "first", f"seal_{partner}", f"send_{partner}", "tidy"]


def test_the_step_list_names_each_step_once_in_the_order_the_grid_shows():
    names = [s.name for s in pipeline.STEPS]
    assert names == ["check_agreement", "extract", "quality", "prepare", "encrypt", "deliver", "await_receipt", "notify",
                     "cleanup"]
    for step in pipeline.STEPS:
        # One name: function, module (transfers.steps.<name>) and task id.
        assert step.function.__name__ == step.name
        assert step.function.__module__ == f"transfers.steps.{step.name}"
    assert [s.name for s in pipeline.STEPS if s.per_recipient] == ["encrypt", "deliver", "await_receipt"]
    assert [s.name for s in pipeline.STEPS if s.wait] == ["await_receipt"]
    assert [s.name for s in pipeline.STEPS if s.gate] == ["check_agreement"]
    assert [s.name for s in pipeline.STEPS if s.teardown] == ["cleanup"]
    assert pipeline.STEPS[-1].teardown  # the teardown also comes last in the list
