"""A flow's retention: how long each copy it makes is kept, place by place (ISO 8601 periods).

Staging and outbox, the recipient's SFTP copy, an optional archive (a folder under ``TRANSFERS_HOME``
or an S3 bucket), quality reports, notices and logs. The retention purge deletes by these periods, so
an archive folder is checked here never to be the home itself or a folder the pipeline already uses.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import field_validator, model_validator

from transfers.agreement.common import _CONN_ID, _Strict, check_relative_path
from transfers.durations import IsoDuration, parse_duration
from transfers.settings import HOME_FOLDERS


class RemoteRetention(_Strict):
    """The copy left on the recipient's SFTP server until it collects it."""

    period: IsoDuration
    # Deleting on a partner's server needs its agreement; without it the copy is theirs to remove.
    sender_may_remove: bool = False


_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ArchiveRetention(_Strict):
    """Encrypted deliveries archived after delivery: a local directory or an S3 bucket/prefix."""

    period: IsoDuration
    dir: str | None = None  # local: a folder under TRANSFERS_HOME (relative, no '..')
    bucket: str | None = None  # S3 (versioned or not: every version is deleted)
    prefix: str = ""
    connection: str | None = None  # S3: connection id (aws type; extra.endpoint_url, region_name)

    @field_validator("dir")
    @classmethod
    def _inside_home(cls, value: str | None) -> str | None:
        # The purge deletes and prunes under this folder: outside TRANSFERS_HOME, or on top of
        # another place, a typo here would delete what is not the archive's.
        if value is None:
            return None
        check_relative_path(value, "archive dir")
        parts = [p for p in re.split(r"[/\\]", value) if p not in ("", ".")]
        if not parts:
            raise ValueError(f"archive dir {value!r} must be a folder under TRANSFERS_HOME, not the home itself")
        if parts[0] in HOME_FOLDERS or parts[0].startswith("ledger"):
            raise ValueError(f"archive dir {value!r} is a folder the pipeline already uses under TRANSFERS_HOME "
                             f"({', '.join(HOME_FOLDERS)}, ledger*); name a folder of its own, e.g. 'archive'")
        return value

    @model_validator(mode="after")
    def _one_store(self) -> ArchiveRetention:
        if (self.dir is None) == (self.bucket is None):
            raise ValueError("an archive is either 'dir' (a local directory) or 'bucket' (S3), exactly one")
        if self.bucket is not None:
            if not _BUCKET.match(self.bucket):
                raise ValueError(f"bucket {self.bucket!r} is not a valid S3 bucket name")
            if not self.connection or not _CONN_ID.match(self.connection):
                raise ValueError("an S3 archive needs 'connection' (a connection id holding endpoint and credentials)")
            if self.prefix:
                check_relative_path(self.prefix, "archive prefix")
        return self


class FlowRetention(_Strict):
    """How long each copy made by a flow is kept, place by place (ISO 8601 periods)."""

    staging: IsoDuration  # the run's working files and the encrypted outbox, reused on a retry
    remote: RemoteRetention  # a bare period is accepted: the sender may then not remove it
    archive: ArchiveRetention | None = None  # no archive unless one is named
    reports: IsoDuration = parse_duration("P90D")  # quality reports: they name records, so they expire too
    notices: IsoDuration = parse_duration("P90D")  # copies of withdrawal and correction notices sent to partners
    logs: IsoDuration = parse_duration("P30D")  # run logs kept under TRANSFERS_HOME/logs

    @field_validator("remote", mode="before")
    @classmethod
    def _remote_period(cls, value: Any) -> Any:
        # Checked here so a bad bare period is reported at "remote", where it was written.
        return {"period": parse_duration(value)} if isinstance(value, str) else value
