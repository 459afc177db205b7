"""Where a flow's extract comes from: a query, a CSV file, or an object in an S3 bucket.

A file's path and an object's key are templates of the logical date: ``{ds}``
(``2026-11-23``) and ``{ds_nodash}`` (``20261123``), as Airflow names them. A
template is checked when the agreement loads, so a typo fails ``transfers
validate``, not the 2am run.
"""

from __future__ import annotations

import re
import string
from datetime import date
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from transfers.agreement.common import ConnectionId, _Strict, check_relative_path

#: The placeholders a path or key template may use, and what each stands for.
DATE_PLACEHOLDERS = {"ds": "the logical date, YYYY-MM-DD", "ds_nodash": "the logical date, YYYYMMDD"}

#: S3's rule for a bucket name (general purpose buckets): 3-63 lowercase letters, digits, dots, hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

#: An object's format from its key's ending, when the source does not say ``format:``.
_SUFFIXES: dict[str, Literal["csv", "parquet"]] = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def check_date_template(value: str, what: str) -> str:
    """Refuse a template with a placeholder other than ``{ds}``/``{ds_nodash}``, a format spec, or a stray brace."""
    known = ", ".join(f"{{{n}}} ({meaning})" for n, meaning in DATE_PLACEHOLDERS.items())
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:  # "Single '}' encountered in format string"
        raise ValueError(
            f"{what} {value!r} is not a valid template ({exc}); a template may use {known}, "
            "and writes a literal brace as {{ or }}"
        ) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in DATE_PLACEHOLDERS or spec or conversion:
            raise ValueError(
                f"{what} {value!r}: unknown placeholder {{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}} (a template may use {known})"
            )
    return value


def fill_date_template(template: str, logical_date: date) -> str:
    """The template with ``{ds}`` and ``{ds_nodash}`` filled in for ``logical_date``."""
    return template.format(ds=logical_date.isoformat(), ds_nodash=logical_date.strftime("%Y%m%d"))


class Source(_Strict):
    """Where the sender's extract comes from."""

    kind: Literal["sql", "csv", "s3"]
    connection: ConnectionId  # sql: a database; csv: a directory (extra.path); s3: an aws connection
    query: str | None = None  # sql: a file under config/ holding the query
    path: str | None = None  # csv: a path under the connection's base directory; {ds} = logical date
    bucket: str | None = None  # s3: the bucket
    key: str | None = None  # s3: the object's key; {ds} = logical date
    format: Literal["csv", "parquet"] | None = None  # s3: default from the key's ending (.csv, .parquet, .pq)
    batch_rows: int = Field(default=50_000, ge=1, le=5_000_000)

    @field_validator("path", "key")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        what = f"source {info.field_name}"
        return check_date_template(check_relative_path(value, what), what)

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and (not _BUCKET.match(value) or ".." in value):
            raise ValueError(f"{value!r} is not an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> Source:
        if self.kind == "sql" and not self.query:
            raise ValueError("a sql source needs 'query' (a .sql file under config/)")
        if self.kind == "csv" and not self.path:
            raise ValueError("a csv source needs 'path' (relative to the connection's directory)")
        if self.kind == "s3":
            if not (self.bucket and self.key):
                raise ValueError("an s3 source needs 'bucket' and 'key' (the object's key; {ds} = logical date)")
            if self.query or self.path:
                raise ValueError("an s3 source names its object with 'bucket' and 'key', not 'query' or 'path'")
            if self.format is None and self.object_format is None:
                raise ValueError(
                    f"source key {self.key!r}: cannot tell the format from its ending; "
                    "add format: csv or format: parquet"
                )
        elif self.bucket or self.key or self.format:
            raise ValueError(f"'bucket', 'key' and 'format' are for an s3 source (this one is kind: {self.kind})")
        if self.query:
            check_relative_path(self.query, "source path")
        return self

    @property
    def object_format(self) -> Literal["csv", "parquet"] | None:
        """An s3 source's format: ``format:``, else from the key's ending; None when neither says."""
        if self.format is not None:
            return self.format
        key = (self.key or "").lower()
        return next((kind for suffix, kind in _SUFFIXES.items() if key.endswith(suffix)), None)
