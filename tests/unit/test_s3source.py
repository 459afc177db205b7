"""How an S3 source's failures are classed (``transfers.s3source.classify``), and the reads that pin a version.

The errors are botocore's own exception objects, as boto3 raises them; the real
endpoint is in ``tests/integration/test_s3_source.py``.
"""

from __future__ import annotations

from datetime import date

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from transfers.errors import SourceError, SourceUnavailable
from transfers.s3source import S3Object, classify

WHERE = "connection 'rft_s3', bucket 'rft-exports', key 'ed/2026-11-23/a.csv'"


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject"
    )


@pytest.mark.parametrize(("code", "status"), [("404", 404), ("NoSuchKey", 404)])
def test_an_object_not_there_for_the_date_is_terminal_and_says_what_to_check(code, status):
    error = classify(client_error(code, status), WHERE, date(2026, 11, 23))

    assert type(error) is SourceError
    assert str(error).startswith(WHERE) and "for 2026-11-23 is not there" in str(error)
    assert "key template" in str(error)


@pytest.mark.parametrize("code", ["403", "AccessDenied", "NoSuchBucket", "InvalidAccessKeyId"])
def test_a_refusal_is_terminal(code):
    error = classify(client_error(code, 403), WHERE)
    assert type(error) is SourceError and "refused" in str(error) and "not retried" in str(error)


@pytest.mark.parametrize(
    "exc",
    [
        client_error("SlowDown", 503),
        client_error("InternalError", 500),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
)
def test_an_endpoint_that_fails_or_cannot_be_reached_is_retriable(exc):
    error = classify(exc, WHERE)
    assert isinstance(error, SourceUnavailable) and str(error).startswith(WHERE)


def test_every_read_names_the_version_looked_up_or_its_etag_where_there_are_no_versions():
    base = {"connection": "c", "bucket": "b", "key": "k", "etag": '"e1"', "size": 3, "format": "csv"}
    assert S3Object(version_id="v1", **base).pinned() == {"VersionId": "v1"}
    assert S3Object(version_id=None, **base).pinned() == {"IfMatch": '"e1"'}
    assert S3Object(version_id="null", **base).pinned() == {"IfMatch": '"e1"'}  # versioning suspended
