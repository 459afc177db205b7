"""One flow run, (flow, logical date), as the list of its steps: ``STEPS``.

Each entry names a step once: its function (in :mod:`transfers.steps`, a module of
the same name), its DAG task id (``<name>_<partner>`` for a step run per recipient)
and the key of its result. ``transfers run`` (:func:`run_flow`) runs them in order in
one process; the DAG builds one task per entry (a step with ``mapped`` as a plan task, a mapped
task per part and a seal task), so the grid shows which step failed.
Adding a step is adding an entry here.

Every step is ``step(run, resolvers, ledger[, recipient]) -> result`` (see
:mod:`transfers.steps`). Re-running a (flow, date) is safe: a recipient already in
the ledger is not sent to again, the encrypted outbox of a run is reused rather than
re-made (a new encryption would be a different file under the same name), and a file
the recipient already holds is recognised by its hash and recorded once.

This module is imported when the DAG file is parsed: nothing heavy at import time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from transfers.flowrun import FlowRun, Resolvers  # re-exported: callers import them from here too
from transfers.logs import run_log
from transfers.steps.await_receipt import await_receipt
from transfers.steps.check_agreement import check_agreement
from transfers.steps.cleanup import cleanup
from transfers.steps.deliver import deliver
from transfers.steps.encrypt import encrypt, encrypt_part, plan_encrypt, seal_encrypt
from transfers.steps.extract import extract
from transfers.steps.notify import notify
from transfers.steps.prepare import prepare
from transfers.steps.prepare_parts import plan_prepare, prepare_part, seal_prepare
from transfers.steps.quality import quality
from transfers.steps.quality_parts import plan_quality, quality_part, seal_quality

if TYPE_CHECKING:
    from transfers.ledger import Ledger

__all__ = ["STEPS", "FlowRun", "Lock", "Mapped", "Resolvers", "Step", "groups", "run_flow"]

Lock = Literal["take", "join", "release"]


@dataclass(frozen=True)
class Mapped:
    """How the DAG runs a step as Airflow mapped tasks; ``transfers run`` calls the step's ``function`` instead.

    Each takes the step's arguments, ``(run, resolvers, ledger[, recipient])``, then: ``plan`` nothing more,
    and returns the parts as small JSON values (an empty list: nothing to do, the seal decides); ``part``
    one of those parts, and returns what it made (small values); ``seal`` the plan and every part's
    report, checks them, and returns the step's result.
    """

    plan: Callable[..., Sequence[Mapping[str, Any]]]
    part: Callable[..., Mapping[str, Any]]
    seal: Callable[..., Mapping[str, Any]]
    seal_name: str
    """The seal task's id is this with ``_<partner>`` per recipient (the plan keeps the step's own id)."""


@dataclass(frozen=True)
class Step:
    """One entry of the step list: how ``transfers run`` and the DAG run a step function."""

    name: str
    """Function, module, result key and DAG task id (``<name>_<partner>`` per recipient)."""
    function: Callable[..., Mapping[str, Any]]
    """``(run, resolvers, ledger)``, or ``(run, resolvers, ledger, recipient)`` if ``per_recipient``."""
    progress: str
    """What ``transfers run`` shows while the step runs; ``{partner}`` is filled in per recipient."""
    per_recipient: bool = False
    """Run once per recipient; consecutive such steps run as one chain per recipient (see :func:`groups`)."""
    gate: bool = False
    """Its result's ``pending`` lists the recipients still to send to; with none, the run stops there
    (the DAG task is a short-circuit, skipping every later task)."""
    teardown: bool = False
    """Runs last whatever happened before (the DAG's teardown); it never decides the run's outcome."""
    lock: Lock = "join"
    """The DAG task's part in the run lock: ``take`` it, ``join`` the run's hold, or ``release`` it."""
    wait: bool = False
    """Waits on something outside this party (a recipient's receipt): it raises ``RetriableError``
    (``ReceiptPending``) until that is there. ``transfers run`` runs it only when asked, after the
    other steps and outside the run lock, polling; the DAG runs it as a reschedule-mode sensor after
    its recipient's chain, outside the run lock, and no other task waits for it (see :func:`groups`)."""

    mapped: Mapped | None = None
    """In the DAG: a planning task (the step's own id), a mapped task per part (``<id>_part``) and a seal task."""

    def key(self, partner: str | None = None) -> str:
        """The task id and result key: the name, with ``_<partner>`` for a per-recipient step."""
        return self.name if partner is None else f"{self.name}_{partner}"

    def task_ids(self, partner: str | None = None) -> tuple[str, ...]:
        """The step's DAG task ids: its key, or for a mapped step the plan, part and seal tasks."""
        if self.mapped is None:
            return (self.key(partner),)
        seal = self.mapped.seal_name if partner is None else f"{self.mapped.seal_name}_{partner}"
        return self.key(partner), f"{self.key(partner)}_part", seal


STEPS: tuple[Step, ...] = (
    Step("check_agreement", check_agreement, "checking the agreement", gate=True, lock="take"),
    Step("extract", extract, "extracting"),
    # In the DAG, quality plans ranges of the extract, quality_part checks one each (mapped), quality_seal judges
    # uniqueness across them and the whole (the scorecard, the quarantine, the ledger entry, a block).
    Step("quality", quality, "checking data quality",
         mapped=Mapped(plan_quality, quality_part, seal_quality, seal_name="quality_seal")),
    # In the DAG, prepare plans the same ranges, prepare_part makes one each safe to send (mapped), prepare_seal
    # closes the prepared stage and records the run's privacy entries once (exclusions summed, k over every part).
    Step("prepare", prepare, "minimising and pseudonymising",
         mapped=Mapped(plan_prepare, prepare_part, seal_prepare, seal_name="prepare_seal")),
    # In the DAG, encrypt_<p> plans the parts, encrypt_<p>_part encrypts one each (mapped), seal_<p> writes the manifest.
    Step("encrypt", encrypt, "encrypting for {partner}", per_recipient=True,
         mapped=Mapped(plan_encrypt, encrypt_part, seal_encrypt, seal_name="seal")),
    Step("deliver", deliver, "delivering to {partner}", per_recipient=True),
    # Not in the chain: waited for after the run (on request) or beside it (a sensor), see Step.wait.
    Step("await_receipt", await_receipt, "waiting for {partner}'s receipt", per_recipient=True, wait=True),
    # After every delivery: a withdrawal that reached the register since the last run is told to earlier recipients.
    Step("notify", notify, "notifying earlier recipients of withdrawals"),
    Step("cleanup", cleanup, "removing working files", teardown=True, lock="release"),
)


def groups(steps: Sequence[Step]) -> list[tuple[Step, ...]]:
    """The steps other than teardowns and wait steps, in order, with consecutive per-recipient steps as one group.

    A group of per-recipient steps runs as a chain per recipient (encrypt then deliver for
    one partner, then the next), so a delivery depends on its own recipient's steps only.
    """
    out: list[tuple[Step, ...]] = []
    for step in steps:
        if step.teardown or step.wait:
            continue
        if step.per_recipient and out and out[-1][0].per_recipient:
            out[-1] = (*out[-1], step)
        else:
            out.append((step,))
    return out


def run_flow(run: FlowRun, resolvers: Resolvers, *, progress: Callable[[str], None] | None = None,
             wait: float = 0, wait_receipt: bool = False, poll: float = 30.0,
             sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Every step for one (flow, logical date); working files are removed whatever happens.

    Returns each step's result under its key (``<name>_<partner>`` per recipient), the
    run's ``status`` (``delivered`` or ``already-delivered``) and, if the run took over a
    stale lock, ``took_over``.

    The steps' log lines (names, counts, paths; never record values) also go to the
    run's own log file, which retention deletes on the flow's ``logs`` period.

    The run holds the (flow, date) lock throughout (see ``transfers.runlock``), taken
    before anything is touched: a second run waits up to ``wait`` seconds, then raises
    ``RunLocked`` having changed nothing, so it never clears the first run's files.

    With ``wait_receipt``, the wait steps (each recipient's signed receipt) run afterwards,
    outside the lock: every ``poll`` seconds until each is acknowledged, saying how long is
    left; ``ReceiptOverdue``, ``ReceiptRejected`` or ``ReceiptInvalid`` end the wait.
    """
    from transfers.runlock import cli_owner, hold

    run.settings.home.mkdir(parents=True, exist_ok=True)  # the default SQLite ledger (and lock) live there
    with hold(run.settings.ledger_database, run.ref.key, run.ds, cli_owner(), wait=wait,
              ttl=run.settings.run_lock_ttl) as held, run_log(run.log_path), run.settings.open_ledger() as ledger:
        results = _run_steps(run, resolvers, ledger, progress or (lambda _msg: None))
        if results.get("status") == "delivered":  # an S3 work store holds the sealed outbox too (for the DAG, purge)
            from transfers.workstore import commit_outbox

            commit_outbox(run, resolvers.connection)
        if held.took_over is not None:
            results["took_over"] = {"holder": held.took_over.describe(),
                                    "since": held.took_over.started_at.isoformat(timespec="seconds")}
    if wait_receipt:
        with run_log(run.log_path), run.settings.open_ledger() as ledger:
            results.update(_wait_steps(run, resolvers, ledger, progress or (lambda _msg: None), poll, sleep))
    return results


def _wait_steps(run: FlowRun, resolvers: Resolvers, ledger: Ledger, say: Callable[[str], None], poll: float,
                sleep: Callable[[float], None]) -> dict[str, Any]:
    """Each wait step for each recipient, looked at again every ``poll`` seconds while it is pending."""
    from transfers.errors import ReceiptPending

    waiting = [(step, r.partner) for step in STEPS if step.wait for r in run.ref.flow.to]
    done: dict[str, Any] = {}
    while waiting:
        still = []
        for step, partner in waiting:
            say(step.progress.format(partner=partner))
            try:
                done[step.key(partner)] = step.function(run, resolvers, ledger, run.recipient(partner))
            except ReceiptPending as exc:
                say(str(exc))
                still.append((step, partner))
        waiting = still
        if waiting:
            sleep(poll)
    return done


def _run_steps(run: FlowRun, resolvers: Resolvers, ledger: Ledger, say: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    pending = [r.partner for r in run.ref.flow.to]
    try:
        for group in groups(STEPS):
            if group[0].per_recipient:
                for partner in pending:
                    recipient = run.recipient(partner)
                    for step in group:
                        say(step.progress.format(partner=partner))
                        results[step.key(partner)] = step.function(run, resolvers, ledger, recipient)
                continue
            [step] = group
            say(step.progress)
            result = results[step.key()] = step.function(run, resolvers, ledger)
            if step.gate:
                pending = list(result["pending"])
                if not pending:
                    say("already delivered to every recipient: nothing to do")
                    results["status"] = "already-delivered"
                    return results
        results["status"] = "delivered"
        return results
    finally:
        for step in STEPS:
            if step.teardown:
                say(step.progress)
                results[step.key()] = step.function(run, resolvers, ledger)
