"""The deployment check: several workers need a PostgreSQL ledger, a shared work store and an external anchor."""

from __future__ import annotations

from pathlib import Path

import pytest

from transfers.deployment import check_deployment, deployment_problems, distributed_executor
from transfers.errors import ConfigError
from transfers.settings import PROJECT_ROOT, Settings

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/ledger"


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(config_dir=PROJECT_ROOT / "config", home=tmp_path / "home", **values)  # type: ignore[arg-type]


def fit(tmp_path: Path, **values: object) -> Settings:
    """A deployment fit for several workers, with ``values`` changed."""
    return settings(tmp_path, **{"workers": "many", "ledger_url": PG, "work_store": "s3://isp-work/runs",
                                 "ledger_anchor_url": "s3://isp-anchor/ledger.head", **values})


def test_one_worker_with_the_default_sqlite_ledger_local_work_store_and_no_anchor_is_fine(tmp_path):
    check_deployment(settings(tmp_path))
    check_deployment(settings(tmp_path), executor="LocalExecutor")
    assert deployment_problems(settings(tmp_path, workers="one")) == []


def test_a_deployment_fit_for_several_workers_passes(tmp_path):
    check_deployment(fit(tmp_path), executor="CeleryExecutor")
    check_deployment(fit(tmp_path, work_store="/mnt/isp-shared", ledger_anchor_url="/mnt/anchor/ledger.head"))


@pytest.mark.parametrize(("change", "named"), [
    ({"ledger_url": None}, "TRANSFERS_LEDGER_URL: TRANSFERS_WORKERS=many: tasks run on several machines, so the "
                           "ledger must be PostgreSQL (postgresql+psycopg2://...), not sqlite (the default SQLite "
                           "file under TRANSFERS_HOME)"),
    ({"ledger_url": "sqlite:////shared/ledger.db"}, "the ledger must be PostgreSQL"),
    ({"work_store": "local"}, "TRANSFERS_WORK_STORE: TRANSFERS_WORKERS=many: tasks run on several machines, so a "
                              "run's working files cannot stay on the worker that wrote them"),
    ({"ledger_anchor_url": None}, "TRANSFERS_LEDGER_ANCHOR_URL: TRANSFERS_WORKERS=many: tasks run on several "
                                  "machines, so the ledger's head must be anchored outside the ledger's host"),
])
def test_each_problem_is_named_with_its_setting(tmp_path, change, named):
    with pytest.raises(ConfigError) as refused:
        check_deployment(fit(tmp_path, **change))

    assert len(refused.value.problems) == 1
    assert named in refused.value.problems[0]


def test_an_anchor_file_on_a_worker_s_own_home_is_refused(tmp_path):
    problems = deployment_problems(fit(tmp_path, ledger_anchor_url=str(tmp_path / "home" / "anchor.head")))

    assert problems == [f"TRANSFERS_LEDGER_ANCHOR_URL: TRANSFERS_WORKERS=many: tasks run on several machines, so the "
                        f"anchor {tmp_path / 'home' / 'anchor.head'} must not be under TRANSFERS_HOME "
                        f"({tmp_path / 'home'}), one worker's disk"]


def test_every_problem_is_listed_at_once_and_a_distributed_executor_is_named_as_the_reason(tmp_path):
    with pytest.raises(ConfigError) as refused:
        check_deployment(settings(tmp_path), executor="airflow.providers.celery.executors.celery_executor.CeleryExecutor")

    problems = refused.value.problems
    assert [p.split(":", 1)[0] for p in problems] == ["TRANSFERS_LEDGER_URL", "TRANSFERS_WORK_STORE",
                                                      "TRANSFERS_LEDGER_ANCHOR_URL"]
    assert all("Airflow's executor is CeleryExecutor" in p for p in problems)


@pytest.mark.parametrize(("executor", "named"), [
    ("CeleryExecutor", "CeleryExecutor"), ("LocalExecutor,KubernetesExecutor", "KubernetesExecutor"),
    ("airflow.providers.edge3.executors.EdgeExecutor", "EdgeExecutor"), ("LocalExecutor", None),
    ("SequentialExecutor", None), ("", None), (None, None),
])
def test_which_executors_run_tasks_on_several_machines(executor, named):
    assert distributed_executor(executor) == named


@pytest.mark.parametrize(("value", "named"), [
    ("s3://Bad_Bucket/x", "TRANSFERS_WORK_STORE: 'Bad_Bucket'"), ("relative/dir", "TRANSFERS_WORK_STORE: 'relative/dir'"),
    ("s3://isp-work/a/../b", "TRANSFERS_WORK_STORE: the prefix 'a/../b'"), ("ftp://x", "TRANSFERS_WORK_STORE"),
])
def test_a_malformed_work_store_is_a_config_error_naming_the_setting(tmp_path, value, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(")):
        settings(tmp_path, work_store=value)


def test_a_malformed_workers_value_is_a_config_error_naming_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="TRANSFERS_WORKERS: 'several'"):
        settings(tmp_path, workers="several")


def test_a_shared_volume_holds_runs_outbox_and_running_markers_and_the_home_keeps_the_rest(tmp_path):
    from datetime import date

    layout = settings(tmp_path, work_store=str(tmp_path / "shared")).layout
    day = date(2026, 11, 25)

    assert layout.run_dir("a", "A", day) == tmp_path / "shared" / "runs" / "a" / "A" / "2026-11-25"
    assert layout.outbox_dir("a", "A", day, "p") == tmp_path / "shared" / "outbox" / "a" / "A" / "2026-11-25" / "p"
    assert layout.folder("outbox") == tmp_path / "shared" / "outbox"
    # Every worker's purge sees a run in progress: its marker is on the shared volume too.
    assert layout.running_marker("a", "A", day) == tmp_path / "shared" / "running" / "a" / "A" / "2026-11-25.json"
    assert layout.log_path("a", "A", day).is_relative_to(tmp_path / "home")
    assert layout.reports_dir("a", "A").is_relative_to(tmp_path / "home")


def test_a_dag_file_parsed_for_several_workers_without_shared_state_is_an_import_error_naming_each_problem(
        monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "airflow-home"))
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "home"))
    for name in ("TRANSFERS_LEDGER_URL", "TRANSFERS_WORK_STORE", "TRANSFERS_LEDGER_ANCHOR_URL", "TRANSFERS_WORKERS"):
        monkeypatch.delenv(name, raising=False)
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))

    [error] = bag.import_errors.values()
    for setting in ("TRANSFERS_LEDGER_URL", "TRANSFERS_WORK_STORE", "TRANSFERS_LEDGER_ANCHOR_URL"):
        assert f"{setting}: Airflow's executor is CeleryExecutor" in error
    assert bag.dag_ids == []


# ---------------------------------------------------------------- the recipient's side

POLICE = "south-yorkshire-police"  # receives Data Flow A (SFTP, inbound/mash), sends nothing
STORE = "postgresql+psycopg2://postgres@127.0.0.1:5432/received"


def receiving(party: str) -> tuple:
    from transfers.agreement import load_config, sides

    return sides(load_config(PROJECT_ROOT / "config"), party).receiving


def test_a_receiving_party_with_a_postgresql_store_and_a_mailbox_or_a_shared_inbox_passes(tmp_path):
    inbound = receiving(POLICE)
    assert [i.key for i in inbound] == ["mash-referrals.A"]

    check_deployment(fit(tmp_path, store_url=STORE, mailbox="police_mailbox"), receiving=inbound)
    check_deployment(fit(tmp_path, store_url=STORE, inbox_dir=tmp_path / "shared" / "inbox"), receiving=inbound,
                     executor="CeleryExecutor")


def test_a_receiving_party_s_default_store_and_default_inbox_are_each_named(tmp_path):
    problems = deployment_problems(fit(tmp_path), receiving=receiving(POLICE))

    assert problems == [
        "TRANSFERS_STORE_URL: TRANSFERS_WORKERS=many: tasks run on several machines, so the store received rows are "
        "loaded into must be PostgreSQL (postgresql+psycopg2://...), not sqlite (the default SQLite file under "
        "TRANSFERS_HOME): rows loaded on one worker must be seen by the destruction run on another",
        f"TRANSFERS_INBOX_DIR: TRANSFERS_WORKERS=many: tasks run on several machines, so the default inbox "
        f"{tmp_path / 'home' / 'inbox'} (one worker's disk) cannot receive mash-referrals.A: mount a volume every "
        f"worker shares and set TRANSFERS_INBOX_DIR to it, or set TRANSFERS_MAILBOX to a remote SFTP mailbox",
    ]


def test_a_sqlite_store_url_and_an_inbox_under_the_home_are_refused(tmp_path):
    inbox = tmp_path / "home" / "elsewhere"
    problems = deployment_problems(fit(tmp_path, store_url="sqlite:////shared/received.db", inbox_dir=inbox),
                                   receiving=receiving(POLICE))

    assert [p.split(":", 1)[0] for p in problems] == ["TRANSFERS_STORE_URL", "TRANSFERS_INBOX_DIR"]
    assert "must be PostgreSQL (postgresql+psycopg2://...), not sqlite:" in problems[0]
    assert f"the inbox {inbox} must not be under TRANSFERS_HOME" in problems[1]


def test_every_problem_of_both_sides_is_listed_at_once(tmp_path):
    with pytest.raises(ConfigError) as refused:
        check_deployment(settings(tmp_path), executor="CeleryExecutor", receiving=receiving(POLICE))

    assert [p.split(":", 1)[0] for p in refused.value.problems] == [
        "TRANSFERS_LEDGER_URL", "TRANSFERS_WORK_STORE", "TRANSFERS_LEDGER_ANCHOR_URL", "TRANSFERS_STORE_URL",
        "TRANSFERS_INBOX_DIR"]


def test_mesh_is_a_remote_inbox_so_only_the_store_is_asked_for(tmp_path):
    from dataclasses import replace

    from transfers.agreement.mesh import MeshRoute

    [inbound] = receiving(POLICE)
    mesh = MeshRoute(mailbox="X26HC001", workflow_id="MASH_REFERRALS", connection="mesh_in")
    by_mesh = replace(inbound, recipient=inbound.recipient.model_copy(update={"mesh": mesh, "sftp": None,
                                                                              "path": None}))

    problems = deployment_problems(fit(tmp_path), receiving=[by_mesh])

    assert [p.split(":", 1)[0] for p in problems] == ["TRANSFERS_STORE_URL"]


def test_a_sending_only_party_and_one_worker_are_not_asked_for_a_store_or_an_inbox(tmp_path):
    from transfers.agreement import load_config, sides

    # The NHS trust sends Data Flow B and receives nothing.
    trust = sides(load_config(PROJECT_ROOT / "config"), "rotherham-nhs-ft")
    assert trust.sending and not trust.receiving
    check_deployment(fit(tmp_path), receiving=trust.receiving)
    assert deployment_problems(settings(tmp_path), receiving=receiving(POLICE)) == []  # one worker: as before
