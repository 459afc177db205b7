"""The S3 work store's objects: list, download, upload, delete; each failure names the object and connection.

boto3 is imported here only (and in the other S3 modules): it is slow to import, and the DAG file
must parse fast. With ``TRANSFERS_WORK_STORE_CONN_ID`` the client is the connection's (an ``aws``
connection: login/password, extra ``endpoint_url``, ``region_name``, as the archive reads it);
unset, boto3's standard chain (``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, an instance role...).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfers.errors import WorkStoreRefused, WorkStoreUnavailable
from transfers.workstore.where import S3Place

if TYPE_CHECKING:
    from datetime import datetime

    from transfers.connections import ConnInfo
    from transfers.settings import Settings

#: Codes that say the request will not succeed as configured (no bucket, wrong or unknown credentials).
_REFUSED = {"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "404",
            "AllAccessDisabled", "InvalidBucketName"}


@dataclass(frozen=True)
class StoredObject:
    relative: str  # the path under the home it mirrors (``runs/...``), never the prefix
    size: int
    modified: datetime


@dataclass
class WorkObjects:
    """One bucket and prefix, through one client."""

    place: S3Place
    client: Any
    via: str  # "connection 'x'" or "the standard AWS chain": what an error names besides the bucket

    def failure(self, action: str, relative: str, exc: Exception) -> Exception:
        from botocore.exceptions import ClientError

        where = f"work store {self.place.url(relative)} (bucket {self.place.bucket!r}, {self.via})"
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", "error"))
            if code in _REFUSED:
                return WorkStoreRefused(f"{where}: {action} refused ({code}); check TRANSFERS_WORK_STORE names an "
                                        f"existing bucket and the credentials may use it")
            return WorkStoreUnavailable(f"{where}: {action} failed ({code}); try again")
        return WorkStoreUnavailable(f"{where}: {action}: the endpoint cannot be reached ({type(exc).__name__})")

    def listing(self, relative: str) -> Iterator[StoredObject]:
        """Every object under ``relative`` + ``/`` (a folder of the layout), all pages."""
        start = self.place.key(relative).rstrip("/") + "/"
        cut = len(self.place.key(""))
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.place.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    yield StoredObject(item["Key"][cut:], int(item["Size"]), item["LastModified"])
        except Exception as exc:  # boto3 raises many kinds; all become ours
            raise self.failure("listing", relative, exc) from None

    def exists(self, relative: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.place.bucket, Key=self.place.key(relative))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self.failure("reading", relative, exc) from None
        except Exception as exc:
            raise self.failure("reading", relative, exc) from None
        return True

    def download(self, relative: str, local: Path) -> bool:
        """``relative`` into ``local`` (owner-only), written whole or not at all; False if it is gone since listed."""
        from botocore.exceptions import ClientError

        tmp = local.with_name(f".{local.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                self.client.download_fileobj(self.place.bucket, self.place.key(relative), fh)
            tmp.replace(local)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey"):
                return False  # deleted by another task between the listing and now: not part of the run any more
            if isinstance(exc, OSError) and not type(exc).__module__.startswith(("botocore", "urllib3")):
                raise  # the local disk's own error (full, read-only) says what it is
            raise self.failure("downloading", relative, exc) from None
        return True

    def upload(self, local: Path, relative: str) -> None:
        try:
            with local.open("rb") as fh:
                self.client.put_object(Bucket=self.place.bucket, Key=self.place.key(relative), Body=fh)
        except Exception as exc:
            raise self.failure("uploading", relative, exc) from None

    def delete(self, relative: str) -> None:
        """Delete one object (absent is fine: deleting is idempotent in S3)."""
        try:
            self.client.delete_object(Bucket=self.place.bucket, Key=self.place.key(relative))
        except Exception as exc:
            raise self.failure("deleting", relative, exc) from None

    def delete_under(self, relative: str) -> int:
        """Delete every object under ``relative`` + ``/``; how many there were."""
        found = [obj.relative for obj in self.listing(relative)]
        for name in found:
            self.delete(name)
        return len(found)


def open_objects(settings: Settings, place: S3Place, connection: Callable[[str], ConnInfo] | None) -> WorkObjects:
    """The work store's client: ``TRANSFERS_WORK_STORE_CONN_ID``'s connection, else boto3's standard chain."""
    conn_id = settings.work_store_conn_id
    if conn_id:
        from transfers.connections import cli_connection
        from transfers.retention.s3 import client

        return WorkObjects(place, client((connection or cli_connection)(conn_id)), f"connection {conn_id!r}")
    import boto3
    from botocore.config import Config as BotoConfig

    # Bounded, like every network wait: a task never hangs on the store.
    made = boto3.client("s3", config=BotoConfig(retries={"max_attempts": 3}, connect_timeout=10, read_timeout=60,
                                                s3={"addressing_style": "path"}))
    return WorkObjects(place, made, "the standard AWS chain (TRANSFERS_WORK_STORE_CONN_ID unset)")
