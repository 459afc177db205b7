"""Extract from an object in an S3 bucket: the one named for the logical date, read in batches.

``source: {kind: s3, connection, bucket, key: "exports/{ds}/referrals.csv"}``. The
connection is an ``aws`` connection, made into a boto3 client exactly as the archive
makes its own (:func:`transfers.retention.s3.client`).

The object is looked up once (``HeadObject``) and from then on every read names
that version (``VersionId``; in a bucket without versioning, ``IfMatch`` on its
ETag), so the rows come from the version the ledger records even if the exporter
writes a new one mid-read. Nothing is written to disk and the object is never in
memory whole:

- CSV is streamed from the body into the CSV batch reader
  (:func:`transfers.csvsource.csv_batches`, with its NUL and UTF-8 checks);
- Parquet needs to seek (the footer, then each row group's column chunks), so
  pyarrow reads through :class:`RangedObject`, a file-like object whose every read
  is a ranged ``GetObject``; one row group is in memory at a time.

Errors (:mod:`transfers.errors`): an object that is not there for the date, a bucket
that does not exist, or credentials the endpoint refuses are ``SourceError``
(terminal, as for a missing CSV file: retrying in five minutes does not write the
sender's export); an endpoint that cannot be reached or fails the request, or an
object replaced while it was being read, is ``SourceUnavailable`` (retriable).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import pandas as pd

from transfers.agreement import Source, check_relative_path
from transfers.agreement.source import fill_date_template
from transfers.connections import ConnInfo
from transfers.csvsource import csv_batches, csv_header
from transfers.errors import SourceError, SourceUnavailable

#: What the endpoint says when the object, its bucket, or we are refused: retrying cannot help.
_MISSING = ("404", "NoSuchKey", "NotFound", "NoSuchVersion")
_REFUSED = (
    "403",
    "AccessDenied",
    "NoSuchBucket",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AllAccessDisabled",
    "InvalidBucketName",
    "ExpiredToken",
    "InvalidToken",
)


@dataclass(frozen=True)
class S3Object:
    """One version of the source object, as ``HeadObject`` found it; the ledger's record of what was read."""

    connection: str
    bucket: str
    key: str
    version_id: str | None  # None in a bucket that never had versioning ("null" is kept as S3 says it)
    etag: str
    size: int
    format: str

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.key}" + (f" (version {self.version_id})" if self.version_id else "")

    def pinned(self) -> dict[str, str]:
        """The ``GetObject`` arguments that read this version and no other."""
        if self.version_id and self.version_id != "null":
            return {"VersionId": self.version_id}
        return {"IfMatch": self.etag}


def object_key(source: Source, logical_date: dt.date) -> str:
    """The source object's key for ``logical_date`` (the template checked again, filled in)."""
    return check_relative_path(fill_date_template(source.key or "", logical_date), "source.key")


def _where(conn: ConnInfo, bucket: str, key: str) -> str:
    return f"connection {conn.conn_id!r}, bucket {bucket!r}, key {key!r}"


def classify(exc: Exception, where: str, logical_date: dt.date | None = None) -> SourceError | SourceUnavailable:
    """A boto3 failure as our error: missing or refused (terminal), or the endpoint failing (retriable)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "error")
        if code in _MISSING:
            date = f" for {logical_date}" if logical_date else ""
            return SourceError(
                f"{where}: the object{date} is not there ({code}); check the key template and "
                "that the export was written, then run the flow again for this date"
            )
        if code in _REFUSED:
            return SourceError(
                f"{where}: refused by the S3 endpoint ({code}); check the bucket name and the "
                "connection's access key, secret and region (not retried)"
            )
        return SourceUnavailable(f"{where}: the S3 endpoint failed the request ({code}); try again")
    if isinstance(exc, BotoCoreError | OSError):
        return SourceUnavailable(f"{where}: the S3 endpoint cannot be reached ({type(exc).__name__})")
    return SourceUnavailable(f"{where}: reading the object failed ({type(exc).__name__})")


def locate(source: Source, conn: ConnInfo, *, logical_date: dt.date, s3: Any = None) -> tuple[Any, S3Object]:
    """The client and the current version of the object named for ``logical_date`` (``HeadObject``, no body)."""
    from transfers.retention.s3 import client

    bucket, key = source.bucket or "", object_key(source, logical_date)
    s3 = s3 if s3 is not None else client(conn)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # boto3 raises many kinds; all become ours
        raise classify(exc, _where(conn, bucket, key), logical_date) from None
    return s3, S3Object(
        connection=conn.conn_id,
        bucket=bucket,
        key=key,
        version_id=head.get("VersionId"),
        etag=str(head.get("ETag", "")),
        size=int(head.get("ContentLength", 0)),
        format=source.object_format or "csv",
    )


def _get(s3: Any, obj: S3Object, **extra: str) -> IO[bytes]:
    try:
        return s3.get_object(Bucket=obj.bucket, Key=obj.key, **obj.pinned(), **extra)["Body"]
    except Exception as exc:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "PreconditionFailed":
            raise SourceUnavailable(
                f"{obj.where}: the object was replaced while it was being read; "
                "run the extract again to read the new one"
            ) from None
        raise classify(exc, f"connection {obj.connection!r}, {obj.where}") from None


class RangedObject(io.RawIOBase):
    """One version of an object as a seekable read-only file: each read is a ranged ``GetObject``.

    Wrapped in a ``BufferedReader`` by :func:`open_ranged`, so pyarrow's small reads (the
    footer) cost one request per buffer, and its large ones (column chunks) one each.
    """

    def __init__(self, s3: Any, obj: S3Object) -> None:
        self._s3, self._obj, self._pos = s3, obj, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._obj.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._pos >= self._obj.size or not len(buffer):
            return 0
        end = min(self._pos + len(buffer), self._obj.size) - 1
        body = _get(self._s3, self._obj, Range=f"bytes={self._pos}-{end}")
        try:
            data = body.read()
        finally:
            body.close()
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


def open_ranged(s3: Any, obj: S3Object) -> IO[bytes]:
    return io.BufferedReader(RangedObject(s3, obj), buffer_size=1 << 20)


def object_columns(source: Source, conn: ConnInfo, *, logical_date: dt.date) -> list[str]:
    """The object's columns, reading no row: the CSV header (the body read no further), or the Parquet schema."""
    s3, obj = locate(source, conn, logical_date=logical_date)
    if obj.format == "parquet":
        return list(_parquet(s3, obj).schema_arrow.names)
    with _get(s3, obj) as body:
        return csv_header(body, obj.where)


def _parquet(s3: Any, obj: S3Object) -> Any:
    import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    try:
        # pre_buffer (on by default) would fetch every row group at the first batch: the whole object in memory.
        return pq.ParquetFile(open_ranged(s3, obj), pre_buffer=False)
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{obj.where}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from None


def read_batches(s3: Any, obj: S3Object, batch_rows: int) -> Iterator[pd.DataFrame]:
    """The object's rows in batches of at most ``batch_rows``, as text (see :mod:`transfers.sources`)."""
    if obj.format == "csv":
        yield from csv_batches(lambda: _get(s3, obj), obj.where, batch_rows)
        return
    import pyarrow as pa

    from transfers.cells import as_text

    parquet = _parquet(s3, obj)
    names = list(parquet.schema_arrow.names)
    empty = True
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows):
            empty = False
            yield as_text(pd.DataFrame({name: _values(batch.column(i)) for i, name in enumerate(names)}, dtype=object))
    except pa.ArrowInvalid as exc:
        raise SourceError(f"{obj.where}: not a readable Parquet file ({str(exc).splitlines()[0][:200]})") from None
    if empty:
        yield pd.DataFrame({name: pd.Series(dtype=object) for name in names})


def _values(column: Any) -> list[Any]:
    """A Parquet column's values for ``as_text``: integers through Arrow's own text (exact beyond 2**53)."""
    import pyarrow as pa

    if pa.types.is_integer(column.type):
        return column.cast(pa.string()).to_pylist()
    return column.to_pylist()


def extract_s3(source: Source, conn: ConnInfo, *, logical_date: dt.date) -> Iterator[pd.DataFrame]:
    """The rows of the object named for ``logical_date``, in batches (its current version when called)."""
    s3, obj = locate(source, conn, logical_date=logical_date)
    yield from read_batches(s3, obj, source.batch_rows)
