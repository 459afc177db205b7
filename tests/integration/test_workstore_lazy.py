"""The S3 work store's staging parts fetched on demand: a task downloads the parts it reads, no other.

The same real parts and DAG wrapper as ``test_workstore.py`` (moto's S3 server, sshd, PostgreSQL, ``gpg``),
with flow A's source read in batches of a few rows, so each stage has several staging parts. Which objects
a task downloaded is recorded by wrapping ``WorkObjects.download`` (the real download still runs): moto's
server keeps no request log a test can read.
"""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import pytest
import yaml

from tests.integration import test_workstore as base
from tests.integration.conftest import LOGICAL_DATE, read_delivery
from tests.integration.test_workstore import PREFIX, keys, run_task, send, working_files
from transfers.devkit.signoff import sign_for_partners

pytestmark = pytest.mark.integration

# test_workstore.py's fixtures: the bucket, the shared ledger, two worker homes and the DAG file.
store, ledger_url, workers = base.store, base.ledger_url, base.workers

RUN = f"{PREFIX}/runs/mash-referrals/A/{LOGICAL_DATE}"


def batch_rows(world, rows: int) -> None:
    """Flow A's source read ``rows`` rows a batch (so a staging part each); the agreement signed off again."""
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    next(f for f in data["flows"] if f["id"] == "A")["source"]["batch_rows"] = rows
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sign_for_partners(world.settings.config_dir, world.secrets["transfers_signing_key"])


@pytest.fixture
def downloads(workers) -> list[str]:
    """Every object downloaded from the work store, in order (path under the prefix)."""
    from transfers.workstore.objects import WorkObjects

    got: list[str] = []
    real = WorkObjects.download

    def recorded(self, relative, local):
        got.append(relative)
        return real(self, relative, local)

    workers.monkeypatch.setattr(WorkObjects, "download", recorded)
    return got


def stage_parts(client, bucket: str, stage: str) -> list[str]:
    return sorted(k.rsplit("/", 1)[1] for k in keys(client, bucket, f"{RUN}/{stage}/") if "/part-" in k)


def part_rows(client, bucket: str, stage: str) -> list[int]:
    """The stage's rows per part, from its columns.json in the store (names and counts only, no values)."""
    body = client.get_object(Bucket=bucket, Key=f"{RUN}/{stage}/columns.json")["Body"].read()
    return json.loads(body)["part_rows"]


def holding(counts: list[int], start: int, rows: int) -> set[str]:
    """The staging parts holding rows ``start`` to ``start + rows`` (not included)."""
    names, first = set(), 0
    for index, count in enumerate(counts):
        if first < start + rows and start < first + count:
            names.add(f"part-{index:05d}.arrow.gcm")
        first += count
    return names


def test_a_mapped_encrypt_part_downloads_only_the_staging_parts_holding_its_rows_and_gpg_decrypts_the_delivery(
        world, store, workers: SimpleNamespace, downloads, gpg_partner, caplog):
    client, bucket, _conn = store
    batch_rows(world, 7)  # 40 rows: 6 staging parts a stage; delivered in 3 parts of at most 15 rows
    workers.monkeypatch.setenv("TRANSFERS_PART_ROWS", "14")  # quality and prepare: 3 ranges of 2 staging parts
    caplog.set_level(logging.INFO, logger="transfers.workstore.checkout")
    by_task: list[tuple[str, list[str]]] = []
    fetched_lines: list[dict] = []
    for name in send(workers):  # each task on the other worker's home
        by_task.append((name, list(downloads)))
        if name == "encrypt.part":
            [line] = [r.msg for r in caplog.records if isinstance(r.msg, dict)
                      and r.msg["event"] == "staging parts fetched on demand"]
            fetched_lines.append(line)
        downloads.clear()
        caplog.clear()
        assert working_files(workers.homes[0]) == working_files(workers.homes[1]) == [], name

    counts = part_rows(client, bucket, "prepared")
    assert len(counts) == 6 and sum(counts) == 40
    parts = [got for name, got in by_task if name == "encrypt.part"]
    assert len(parts) == 3
    for index, got in enumerate(parts):
        staging = {g.rsplit("/", 1)[1] for g in got if "/part-" in g and g.startswith("runs/")}
        assert not [g for g in got if "/extract/part-" in g], index  # the extract is not its business
        assert staging == holding(counts, 15 * index, min(15, 40 - 15 * index)), index
        assert not [g for g in got if g.startswith("outbox/") and g.endswith(".pgp")], index  # no other part's file
        # The task's end says what it fetched on demand: counts and bytes only.
        assert fetched_lines[index]["parts"] == len(staging) and fetched_lines[index]["bytes"] > 0
        assert fetched_lines[index]["left_in_store"] == 12 - len(staging)  # both stages' other parts
    # Each mapped quality part fetches only its own range of the extract; together they fetch all of it once.
    ranges = [sorted(g.rsplit("/", 1)[1] for g in got if "/extract/part-" in g)
              for name, got in by_task if name == "quality.part"]
    assert [len(r) for r in ranges] == [2, 2, 2], ranges
    assert sorted(sum(ranges, [])) == stage_parts(client, bucket, "extract")
    seal = dict(by_task)["encrypt.seal"]
    assert not [g for g in seal if "/part-" in g]  # the seal reads the outbox, not the staging
    assert len([g for g in seal if g.endswith(".pgp")]) == 3  # ...all of it: it checks every part's sha256

    files = world.delivered("inbound/mash")
    assert len(files) == 3
    assert sum(len(read_delivery(gpg_partner, f)) for f in files) == 40


def test_a_retried_extract_with_fewer_parts_leaves_no_stale_part_to_read_and_none_after_cleanup(
        world, store, workers: SimpleNamespace, downloads):
    client, bucket, _conn = store
    batch_rows(world, 7)
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[1], "extract")
    assert len(stage_parts(client, bucket, "extract")) == 6

    batch_rows(world, 25)  # the retry reads bigger batches: 2 parts
    downloads.clear()
    run_task(workers, workers.homes[0], "extract")

    assert not [d for d in downloads if "/part-" in d]  # rewriting a stage reads none of its old parts
    assert stage_parts(client, bucket, "extract") == ["part-00000.arrow.gcm", "part-00001.arrow.gcm"]
    assert part_rows(client, bucket, "extract") == [25, 15]

    # As if a commit was cut short before it deleted the old parts: one is still in the store.
    stale = f"{RUN}/extract/part-00004.arrow.gcm"
    client.put_object(Bucket=bucket, Key=stale, Body=b"an earlier attempt's part")
    downloads.clear()
    run_task(workers, workers.homes[1], "quality")
    run_task(workers, workers.homes[0], "prepare")

    assert sorted({d.rsplit("/", 1)[1] for d in downloads if "/extract/part-" in d}) == \
        ["part-00000.arrow.gcm", "part-00001.arrow.gcm"]  # named from columns.json: the stale part is never read
    assert sum(part_rows(client, bucket, "prepared")) == 40
    assert stale in keys(client, bucket, f"{RUN}/")

    run_task(workers, workers.homes[1], "cleanup")
    assert keys(client, bucket, f"{PREFIX}/runs/") == {}  # the stale part went with the rest of the staging
    assert working_files(workers.homes[0]) == working_files(workers.homes[1]) == []


def test_a_staging_part_missing_from_the_store_is_a_clear_error_naming_the_object_and_bucket(
        world, store, workers: SimpleNamespace):
    from airflow.sdk.exceptions import AirflowFailException

    client, bucket, _conn = store
    batch_rows(world, 7)
    run_task(workers, workers.homes[0], "check_agreement")
    run_task(workers, workers.homes[1], "extract")
    gone = f"{RUN}/extract/part-00002.arrow.gcm"
    client.delete_object(Bucket=bucket, Key=gone)
    before = working_keys(client, bucket)

    with pytest.raises(AirflowFailException) as failed:  # terminal: a retry finds it missing too
        run_task(workers, workers.homes[0], "quality")

    message = str(failed.value)
    assert f"s3://{bucket}/{gone}" in message and f"bucket {bucket!r}" in message
    assert "connection 'work_s3'" in message and "stage 'extract'" in message
    assert working_keys(client, bucket) == before  # the failed task committed nothing (but its log part)
    assert working_files(workers.homes[0]) == []


def working_keys(client, bucket: str) -> dict[str, str]:
    """The bucket's objects but the run log's parts, which every task publishes whatever its outcome."""
    return {k: v for k, v in keys(client, bucket).items() if "/logs/" not in k}
