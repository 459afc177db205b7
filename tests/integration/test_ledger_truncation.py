"""A ledger cut, emptied, deleted or rehashed together with the anchor beside it, caught by ``ledger verify``.

A real flow run (PostgreSQL source, sshd, gpg) archives its delivery manifest,
which carries the ledger's head, under the flow's archive. The external anchor is
either a file in a directory standing in for another volume (no second volume
exists here) or an object in a versioned bucket on moto's ``ThreadedMotoServer``,
a real S3 HTTP endpoint on 127.0.0.1 (see test_retention_places.py); boto3 finds
it through the standard ``AWS_ENDPOINT_URL_S3`` variable, as it would MinIO.
"""

from __future__ import annotations

import json

import pytest

from tests import ledger_tamper
from tests.conftest import _free_port
from tests.integration.conftest import LOGICAL_DATE
from tests.integration.test_retention_places import BUCKET, places  # noqa: F401 - the S3 archive world
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration

DS = LOGICAL_DATE.isoformat()


@pytest.fixture(scope="module")
def s3_endpoint():
    """As in test_retention_places.py, but leaving moto as it found it.

    moto keeps its buckets in the process, not per server: a bucket left behind
    would make the next module's ``create_bucket`` fail, so it is removed after.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="eu-west-2")
    existed = BUCKET in [b["Name"] for b in client.list_buckets().get("Buckets", [])]
    if not existed:
        client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    yield url, client
    if not existed:
        page = client.list_object_versions(Bucket=BUCKET)
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
        client.delete_bucket(Bucket=BUCKET)
    server.stop()


@pytest.fixture(params=["file", "s3"])
def anchored(request, world, cli, monkeypatch, tmp_path):
    """Flow A run once with an external anchor; returns (world, cli, anchor url, manifest path, s3 client)."""
    client = None
    if request.param == "s3":
        url, client = request.getfixturevalue("s3_endpoint")
        for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                            "AWS_ENDPOINT_URL_S3": url, "AWS_DEFAULT_REGION": "eu-west-2"}.items():
            monkeypatch.setenv(name, value)
        anchor_url = f"s3://{BUCKET}/ledger-anchors/{tmp_path.name}/ledger.head.json"
    else:
        anchor_url = str(tmp_path / "other-volume" / "ledger.head")
    monkeypatch.setenv("TRANSFERS_LEDGER_ANCHOR_URL", anchor_url)
    world.settings = world.settings.model_copy(update={"ledger_anchor_url": anchor_url})
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    manifest = (world.settings.home / "archive" / "mash-referrals" / "A" / DS / "south-yorkshire-police"
                / f"mash-referrals_A_{DS}.manifest.json")
    ok = cli("ledger", "verify")
    assert ok.exit_code == 0, ok.output  # nothing found before the attack
    assert "external anchor" in ok.output and "1 archived manifest head(s)" in ok.output
    return world, cli, anchor_url, manifest, client


def paths(world):
    home = world.settings.home
    return home / "ledger.db", home / "ledger.head"


def manifest_head(manifest) -> int:
    return json.loads(manifest.read_text())["ledger_head"]["seq"]


def last_seq(world) -> int:
    return world.settings.open_ledger().head().seq


def anchor_name(anchor_url: str) -> str:
    return f"external anchor {anchor_url}"


def test_truncated_ledger_with_rewritten_anchor_is_caught(anchored):
    world, cli, anchor_url, manifest, _client = anchored
    cut_at, end = manifest_head(manifest) - 1, last_seq(world)
    ledger_tamper.truncate(*paths(world), keep=cut_at)

    result = cli("ledger", "verify")

    assert result.exit_code == 3
    assert (f"ledger ends at entry {cut_at} but archived manifest {manifest} says {cut_at + 1} "
            f"(entries cut off the end?)") in result.output
    assert f"ledger ends at entry {cut_at} but {anchor_name(anchor_url)}" in result.output
    assert f"says {end} (entries cut off the end?)" in result.output


def test_emptied_ledger_and_deleted_anchor_are_caught(anchored):
    world, cli, anchor_url, manifest, client = anchored
    head, end = manifest_head(manifest), last_seq(world)
    ledger_tamper.delete_all(*paths(world))
    if client is not None:  # whoever emptied it also deletes the anchor object: a delete marker
        client.delete_object(Bucket=BUCKET, Key=anchor_url.removeprefix(f"s3://{BUCKET}/"))

    result = cli("ledger", "verify")

    assert result.exit_code == 3
    assert f"ledger ends at entry 0 but archived manifest {manifest} says {head}" in result.output
    assert f"ledger ends at entry 0 but {anchor_name(anchor_url)}" in result.output
    assert f"says {end} (entries cut off the end?)" in result.output
    if client is not None:
        assert f"{anchor_name(anchor_url)} was deleted at" in result.output


def test_deleted_database_and_anchor_are_caught(anchored):
    world, cli, anchor_url, manifest, _client = anchored
    head, end = manifest_head(manifest), last_seq(world)
    ledger_tamper.delete_database(*paths(world))

    result = cli("ledger", "verify")

    assert result.exit_code == 3
    assert f"ledger ends at entry 0 but archived manifest {manifest} says {head}" in result.output
    assert f"ledger ends at entry 0 but {anchor_name(anchor_url)}" in result.output
    assert f"says {end} (entries cut off the end?)" in result.output


def test_consistently_rehashed_ledger_is_caught(anchored):
    world, cli, anchor_url, manifest, client = anchored
    head, end = manifest_head(manifest), last_seq(world)
    ledger_tamper.rehash(*paths(world), edit_seq=1)
    if client is not None:  # the attacker overwrites the anchor object too; its history remains
        local = json.loads(paths(world)[1].read_text())
        client.put_object(Bucket=BUCKET, Key=anchor_url.removeprefix(f"s3://{BUCKET}/"),
                          Body=json.dumps(local).encode())

    result = cli("ledger", "verify")

    assert result.exit_code == 3
    assert (f"entry {head}: hash differs from the one in archived manifest {manifest} "
            f"(the ledger was rewritten from here on?)") in result.output
    assert f"hash differs from the one in {anchor_name(anchor_url)}" in result.output
    if client is None:
        assert f"entry {end}: hash differs from the one in {anchor_name(anchor_url)}" in result.output


def test_a_cut_ledger_is_caught_by_the_manifest_in_an_s3_archive_without_any_external_anchor(request):
    world, cli, client, prefix, _versions = request.getfixturevalue("places")  # flow A archives to S3
    run_flow(world.run("mash-referrals.A"), world.resolvers())
    assert cli("ledger", "verify").exit_code == 0
    key = f"{prefix}/mash-referrals/A/{DS}/south-yorkshire-police/mash-referrals_A_{DS}.manifest.json"
    head = json.loads(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())["ledger_head"]["seq"]
    ledger_tamper.truncate(*paths(world), keep=head - 1)

    result = cli("ledger", "verify")

    assert result.exit_code == 3
    assert (f"ledger ends at entry {head - 1} but archived manifest s3://{BUCKET}/{key} says {head} "
            f"(entries cut off the end?)") in result.output
