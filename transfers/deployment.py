"""Is this deployment fit for the workers it has? ``check_deployment`` lists every problem at once.

With several worker machines (``TRANSFERS_WORKERS=many``, or an Airflow executor that runs tasks on
other machines: CeleryExecutor, KubernetesExecutor, EdgeExecutor, decided by the Airflow side) no
task may rely on what only one machine holds: the ledger must be PostgreSQL (a SQLite file is one
machine's; several writers on a network file system corrupt it), the run's working files must be
in a shared work store (not ``local``), and the ledger's head must be anchored outside the ledger's
host (``TRANSFERS_LEDGER_ANCHOR_URL``; the default head file is one worker's). It runs where a
misconfiguration is seen first: at DAG parse (the DAG file's import error) and in ``transfers validate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import ConfigError

if TYPE_CHECKING:
    from transfers.settings import Settings

#: Executors that run tasks on more than one machine (the last part of a dotted path counts too).
DISTRIBUTED_EXECUTORS = frozenset({"CeleryExecutor", "KubernetesExecutor", "EdgeExecutor",
                                   "CeleryKubernetesExecutor", "LocalKubernetesExecutor"})


def distributed_executor(executor: str | None) -> str | None:
    """The first executor in Airflow's ``[core] executor`` (a comma-separated list, names or dotted paths)
    that runs tasks on several machines, or None."""
    for entry in (executor or "").split(","):
        name = entry.strip().rsplit(".", 1)[-1].split(":")[-1]
        if name in DISTRIBUTED_EXECUTORS:
            return name
    return None


def deployment_problems(settings: Settings, *, executor: str | None = None) -> list[str]:
    """Every reason this deployment cannot run tasks on several machines; [] when it has one worker.

    ``executor``: Airflow's ``[core] executor``, read by the caller (``transfers`` never imports Airflow).
    """
    distributed = distributed_executor(executor)
    if settings.workers != "many" and distributed is None:
        return []
    why = (f"Airflow's executor is {distributed}" if distributed else "TRANSFERS_WORKERS=many") + \
        ": tasks run on several machines, so"
    problems = []
    ledger = settings.ledger_database
    if not ledger.startswith("postgresql"):
        dialect = ledger.split(":", 1)[0]
        problems.append(f"TRANSFERS_LEDGER_URL: {why} the ledger must be PostgreSQL (postgresql+psycopg2://...), "
                        f"not {dialect}" + (" (the default SQLite file under TRANSFERS_HOME)"
                                            if settings.ledger_url is None else ""))
    if settings.work_store == "local":
        problems.append(f"TRANSFERS_WORK_STORE: {why} a run's working files cannot stay on the worker that wrote "
                        f"them; set s3://bucket/prefix or the path of a volume every worker mounts")
    anchor = settings.ledger_anchor_url
    if not anchor:
        problems.append(f"TRANSFERS_LEDGER_ANCHOR_URL: {why} the ledger's head must be anchored outside the ledger's "
                        f"host (s3://bucket/key in a versioned bucket, or a file on another volume); it is not set")
    elif not anchor.startswith("s3://") and Path(anchor).resolve().is_relative_to(settings.home.resolve()):
        problems.append(f"TRANSFERS_LEDGER_ANCHOR_URL: {why} the anchor {anchor} must not be under TRANSFERS_HOME "
                        f"({settings.home}), one worker's disk")
    return problems


def check_deployment(settings: Settings, *, executor: str | None = None) -> None:
    """Raise ``ConfigError`` listing every problem of ``deployment_problems``; nothing when there is none."""
    problems = deployment_problems(settings, executor=executor)
    if problems:
        raise ConfigError(problems)
