"""Listing and purging every version of an archived key, across pages, on moto's S3 server.

moto's ``ThreadedMotoServer`` is a real S3 HTTP endpoint in this process (no AWS
here); ``MOTO_S3_DEFAULT_MAX_KEYS`` makes it return two entries a page, so the
listing only comes out whole if boto3's paginator follows the key and version
markers from page to page.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.s3 import moto_s3, s3_bucket
from transfers.retention import s3 as archive_s3

pytestmark = pytest.mark.integration

PACKAGE = Path(__file__).resolve().parents[2] / "transfers"


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setenv("MOTO_S3_DEFAULT_MAX_KEYS", "2")
    with moto_s3() as conn, s3_bucket(conn, "isp-pages") as (client, bucket):
        yield client, bucket


def test_every_version_and_delete_marker_is_listed_and_purged_across_pages(small_pages):
    client, bucket = small_pages
    key = "flow-a/2026-11-23/part-001.csv.pgp"
    for n in range(5):
        client.put_object(Bucket=bucket, Key=key, Body=f"version {n}".encode())
    client.delete_object(Bucket=bucket, Key=key)  # a delete marker on top: the data is still there
    client.put_object(Bucket=bucket, Key=key + ".sig", Body=b"a longer key with the same prefix")
    url = f"s3://{bucket}/{key}"

    pages = list(client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key))
    assert len(pages) > 2  # the listing really spans pages

    found = archive_s3.versions(client, url)

    assert len(found) == 6  # five versions and the delete marker, not just the first page of two
    assert sum(1 for v in found if v["Size"] == 0) == 1
    deleted, how = archive_s3.delete_all_versions(client, url)
    assert deleted == 6 and "no version or delete marker left" in how
    assert archive_s3.versions(client, url) == []
    # the sibling key with the same prefix is not this key's version, and stays
    assert [v["Key"] for v in archive_s3.key_versions(client, bucket, key + ".sig")] == [key + ".sig"]


def test_object_versions_are_listed_only_through_the_boto3_paginator():
    hand_rolled = re.compile(r"\.list_object_versions\(|VersionIdMarker")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if hand_rolled.search(p.read_text())]
    assert offenders == []
