"""The S3 archive: put encrypted deliveries there, and delete them with every version.

The store is reached through a connection (Airflow ``aws`` type or the same JSON
in ``AIRFLOW_CONN_<ID>``): ``login``/``password`` are the access key and secret,
``extra.endpoint_url`` points at an S3-compatible endpoint (MinIO, Ceph, a test
server), ``extra.region_name`` the region. In a versioned bucket a plain delete
only adds a delete marker and the data stays; so a purge deletes every version
and every delete marker of the key, then lists the key again to prove nothing
is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transfers.connections import ConnInfo
from transfers.errors import ArchiveRefused, ArchiveUnavailable, ConfigError


def client(conn: ConnInfo) -> Any:
    """A boto3 S3 client for ``conn`` (imported here: boto3 is slow to import)."""
    import boto3
    from botocore.config import Config as BotoConfig

    extra = dict(conn.extra or {})
    if extra.get("role_arn"):
        # The Amazon provider would assume the role; boto3 here would quietly use the keys' own identity.
        raise ConfigError(f"connection {conn.conn_id!r}: extra.role_arn (assuming a role) is not supported by "
                          "transfers; give the access key and secret of the identity that may use the bucket")
    endpoint = extra.get("endpoint_url") or (f"http://{conn.host}:{conn.port}" if conn.host and conn.port else None)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=conn.login or extra.get("aws_access_key_id"),
        aws_secret_access_key=conn.password or extra.get("aws_secret_access_key"),
        aws_session_token=extra.get("aws_session_token"),
        region_name=extra.get("region_name", "eu-west-2"),
        config=BotoConfig(retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30,
                          s3={"addressing_style": "path"}),
    )


def split(url: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> ``(bucket, key)``."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise ConfigError(f"{url!r} is not an s3://bucket/key address")
    bucket, key = url[5:].split("/", 1)
    return bucket, key


def _errors(action: str, url: str, exc: Exception) -> Exception:
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        if code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ArchiveRefused(f"{url}: {action} refused by the S3 endpoint ({code})")
        return ArchiveUnavailable(f"{url}: {action} failed at the S3 endpoint ({code}); try again")
    if isinstance(exc, EndpointConnectionError | ConnectionError | OSError):
        return ArchiveUnavailable(f"{url}: {action}: the S3 endpoint cannot be reached ({type(exc).__name__})")
    return ArchiveUnavailable(f"{url}: {action} failed ({type(exc).__name__})")


def put(s3: Any, local: Path, url: str, *, sha256: str) -> None:
    """Upload ``local`` to ``url``, then check the stored size."""
    bucket, key = split(url)
    try:
        with local.open("rb") as fh:
            s3.put_object(Bucket=bucket, Key=key, Body=fh, Metadata={"sha256": sha256})
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # boto3 raises many kinds; all become ours
        raise _errors("archiving", url, exc) from None
    if head.get("ContentLength") != local.stat().st_size:
        raise ArchiveRefused(f"{url}: stored size {head.get('ContentLength')} differs from {local.stat().st_size}")


def key_versions(s3: Any, bucket: str, key: str) -> list[dict]:
    """Every version and delete marker of exactly ``key`` (``marker`` True for a delete marker), all pages.

    boto3's paginator follows the key and version-id markers. The listing is by
    prefix, so versions of longer keys that start with ``key`` are left out.
    Raises whatever boto3 raises; callers turn it into their own errors.
    """
    found: list[dict] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=key):
        found += [dict(v, marker=False) for v in page.get("Versions", []) if v["Key"] == key]
        found += [dict(v, marker=True) for v in page.get("DeleteMarkers", []) if v["Key"] == key]
    return found


def versions(s3: Any, url: str) -> list[dict]:
    """Every version and delete marker stored under exactly this key."""
    bucket, key = split(url)
    try:
        return [{"VersionId": item.get("VersionId") or "null", "Size": item.get("Size", 0)}
                for item in key_versions(s3, bucket, key)]
    except Exception as exc:
        raise _errors("listing versions", url, exc) from None


def delete_all_versions(s3: Any, url: str) -> tuple[int, str]:
    """Delete every version of ``url``; list again to prove none is left.

    Returns:
        ``(versions deleted, how it was checked)``; 0 when it was already gone.
    """
    bucket, key = split(url)
    found = versions(s3, url)
    try:
        for item in found:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=item["VersionId"])
    except Exception as exc:
        raise _errors("deleting", url, exc) from None
    left = versions(s3, url)
    if left:
        raise ArchiveRefused(f"{url}: {len(left)} version(s) still stored after deletion")
    return len(found), "no version or delete marker left (ListObjectVersions)"


def read_all(s3: Any, bucket: str, prefix: str, *, suffix: str = "") -> list[tuple[str, bytes]]:
    """``(key, body)`` of the current version of every object under ``prefix`` whose key ends with ``suffix``."""
    found: list[tuple[str, bytes]] = []
    url = f"s3://{bucket}/{prefix}"
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].endswith(suffix):
                    found.append((item["Key"], s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()))
    except Exception as exc:
        raise _errors("reading", url, exc) from None
    return found
