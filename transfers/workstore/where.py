"""What ``TRANSFERS_WORK_STORE`` names: ``local``, a shared volume (an absolute path), or an S3 place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from transfers.errors import ConfigError

# S3's own rule for bucket names (lower case, digits, dots, hyphens; 3 to 63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class S3Place:
    """``s3://bucket/prefix``: a run's working files are objects under ``prefix/`` in ``bucket``."""

    bucket: str
    prefix: str  # no leading or trailing slash; may be empty

    def key(self, relative: str) -> str:
        """The object key of a path relative to the home (``runs/...``, ``outbox/...``)."""
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def url(self, relative: str = "") -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"


WorkStore = Literal["local"] | Path | S3Place


def parse_work_store(value: str) -> WorkStore:
    """``local``, the absolute path of a shared volume, or an ``S3Place``.

    Raises:
        ConfigError: anything else, naming TRANSFERS_WORK_STORE and the forms it takes.
    """
    forms = "`local`, an absolute path of a volume every worker mounts, or s3://bucket/prefix"
    if value == "local":
        return "local"
    if any(c in value for c in "\0\n\r"):
        raise ConfigError(f"TRANSFERS_WORK_STORE: {value!r} holds a control character; it takes {forms}")
    if value.startswith("s3://"):
        bucket, _, prefix = value[5:].partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ConfigError(f"TRANSFERS_WORK_STORE: {bucket!r} in {value!r} is not an S3 bucket name "
                              f"(3 to 63 lower-case letters, digits, dots and hyphens)")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ConfigError(f"TRANSFERS_WORK_STORE: the prefix {prefix!r} in {value!r} has an empty, '.' or "
                              f"'..' part")
        return S3Place(bucket, prefix)
    path = Path(value)
    if not path.is_absolute() or ".." in path.parts:
        raise ConfigError(f"TRANSFERS_WORK_STORE: {value!r} is not {forms}")
    return path
