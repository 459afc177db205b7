"""Is this deployment fit for the workers it has? ``check_deployment`` lists every problem at once.

With several worker machines (``TRANSFERS_WORKERS=many``, or an Airflow executor that runs tasks on
other machines: CeleryExecutor, KubernetesExecutor, EdgeExecutor, decided by the Airflow side) no
task may rely on what only one machine holds: the ledger must be PostgreSQL (a SQLite file is one
machine's; several writers on a network file system corrupt it), the run's working files must be
in a shared work store (not ``local``), and the ledger's head must be anchored outside the ledger's
host (``TRANSFERS_LEDGER_ANCHOR_URL``; the default head file is one worker's). It runs where a
misconfiguration is seen first: at DAG parse (the DAG file's import error) and in ``transfers validate``.

A party that receives flows (``receiving``, from ``sides``) needs more: the received store must be PostgreSQL
(``TRANSFERS_STORE_URL``; the default SQLite file is one worker's, so rows loaded on one worker would be
invisible to the destruction run on another), and deliveries must come from where every worker reaches
(``TRANSFERS_MAILBOX`` or MESH, both remote; or a ``TRANSFERS_INBOX_DIR`` the operator set to a shared volume,
never the default ``<home>/inbox`` nor anything under the home). A sending-only party is asked for neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import ConfigError

if TYPE_CHECKING:
    from transfers.agreement import Inbound
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


def deployment_problems(settings: Settings, *, executor: str | None = None,
                        receiving: Sequence[Inbound] = ()) -> list[str]:
    """Every reason this deployment cannot run tasks on several machines; [] when it has one worker.

    ``executor``: Airflow's ``[core] executor``, read by the caller (``transfers`` never imports Airflow).
    ``receiving``: the flows this party receives (``sides(config, party).receiving``).
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
    if receiving:
        problems += _recipient_problems(settings, receiving, why)
    return problems


def _recipient_problems(settings: Settings, receiving: Sequence[Inbound], why: str) -> list[str]:
    """What a recipient needs with several workers: a shared store, and an inbox every worker reaches."""
    problems = []
    store = settings.store_database
    if not store.startswith("postgresql"):
        problems.append(f"TRANSFERS_STORE_URL: {why} the store received rows are loaded into must be PostgreSQL "
                        f"(postgresql+psycopg2://...), not {store.split(':', 1)[0]}"
                        + (" (the default SQLite file under TRANSFERS_HOME)" if settings.store_url is None else "")
                        + ": rows loaded on one worker must be seen by the destruction run on another")
    by_sftp = [i.key for i in receiving if i.recipient.mesh is None]  # MESH is a remote inbox by nature
    if by_sftp and not settings.mailbox:
        flows = ", ".join(by_sftp)
        if settings.inbox_dir is None:
            problems.append(f"TRANSFERS_INBOX_DIR: {why} the default inbox {settings.inbox} (one worker's disk) "
                            f"cannot receive {flows}: mount a volume every worker shares and set "
                            f"TRANSFERS_INBOX_DIR to it, or set TRANSFERS_MAILBOX to a remote SFTP mailbox")
        elif settings.inbox_dir.resolve().is_relative_to(settings.home.resolve()):
            problems.append(f"TRANSFERS_INBOX_DIR: {why} the inbox {settings.inbox_dir} must not be under "
                            f"TRANSFERS_HOME ({settings.home}), one worker's disk; mount a volume every worker "
                            f"shares, or set TRANSFERS_MAILBOX")
    return problems


def check_deployment(settings: Settings, *, executor: str | None = None, receiving: Sequence[Inbound] = ()) -> None:
    """Raise ``ConfigError`` listing every problem of ``deployment_problems``; nothing when there is none."""
    problems = deployment_problems(settings, executor=executor, receiving=receiving)
    if problems:
        raise ConfigError(problems)
