"""A local S3 endpoint for tests: moto's ``ThreadedMotoServer`` and versioned buckets it leaves as it found them.

moto's server is a real S3 HTTP endpoint on 127.0.0.1 (boto3 talks to it over the
network); it stands in for S3 because no real S3 can run here. moto keeps its
buckets in the process, not per server, so a bucket made here is emptied of every
version and removed afterwards, and bucket names are unique per use.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transfers.connections import ConnInfo
from transfers.retention import s3 as archive_s3

REGION = "eu-west-2"


@contextmanager
def moto_s3(conn_id: str = "archive_s3") -> Iterator[ConnInfo]:
    """A running endpoint on a free port, as the ``aws`` connection ``conn_id`` that reaches it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the system picks a free one
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield ConnInfo(
            conn_id,
            "aws",
            login="test",
            password="test",
            extra={"endpoint_url": f"http://{host}:{port}", "region_name": REGION},
        )
    finally:
        server.stop()


@contextmanager
def s3_bucket(conn: ConnInfo, prefix: str, *, versioned: bool = True) -> Iterator[tuple[Any, str]]:
    """``(client, bucket)``: a new bucket (versioning on unless not ``versioned``); every version and the bucket removed after."""
    client = archive_s3.client(conn)
    bucket = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    if versioned:
        client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        yield client, bucket
    finally:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
        client.delete_bucket(Bucket=bucket)
