"""The ledger's head, kept where the ledger's owner cannot quietly rewrite it.

The anchor file beside the ledger catches a ledger cut short by mistake, but
whoever can rewrite the ledger can rewrite that file too. So a deployment also
names an external anchor, ``TRANSFERS_LEDGER_ANCHOR_URL``, written after each
append:

* a file path on another volume (another host's mount, a WORM share): it holds
  the latest head, so a ledger cut short or rehashed no longer reaches it;
* ``s3://bucket/key`` in a bucket with versioning on: each append adds a
  version, so even an anchor overwritten later keeps every head it ever held in
  its history, and ``verify`` reads them all. Credentials and endpoint come from
  the standard AWS chain (``AWS_ACCESS_KEY_ID``/role, ``AWS_ENDPOINT_URL_S3``,
  ``AWS_DEFAULT_REGION``), never from config. Object Lock on the bucket stops
  the versions themselves being deleted.

A head is ``{"seq", "hash", "table", "at"}``. Nothing here knows the ledger's
tables: it stores and returns heads (the file beside the ledger, ``anchor_path``,
as well as the external ones), and ``Ledger.verify`` compares them.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfers.errors import ConfigError
from transfers.files import write_atomic
from transfers.ledger.chain import Entry, iso
from transfers.logs import get_logger

log = get_logger(__name__)

#: (seq, hash, label naming where it was read, source for grouping)
Head = tuple[int, str, str, str]
Problem = Callable[[str], None]


def _dump(head: dict[str, Any]) -> str:
    return json.dumps(head, sort_keys=True, separators=(",", ":")) + "\n"


def write_head_file(path: Path, head: dict[str, Any]) -> None:
    """Atomically record ``head`` in ``path``, unless a later head is already there.

    Appends from several processes finish in any order; the file lock and the seq
    check keep the file from moving backwards. An unreadable file is left as it is:
    it is evidence for ``verify``.

    Raises:
        OSError: The file could not be written.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            try:
                current = int(json.loads(path.read_text())["seq"])
            except (ValueError, KeyError, TypeError):
                log.error("ledger anchor unreadable; not overwritten", anchor=str(path))
                return
            if current >= int(head["seq"]):
                return
        # Evidence, not personal data: readable as before; the rename is made durable too.
        write_atomic(path, _dump(head), mode=0o644, sync_dir=True)


@dataclass
class FileAnchor:
    """An anchor file outside the ledger's host (another volume)."""

    path: Path

    @property
    def name(self) -> str:
        return f"external anchor {self.path}"

    def write(self, head: dict[str, Any]) -> None:
        write_head_file(self.path, head)

    def shares_volume_with(self, other: Path) -> bool:
        """Whether the anchor sits on the same filesystem as ``other`` (then it guards little)."""
        try:
            mine = next(p for p in (self.path, *self.path.parents) if p.exists())
            theirs = next(p for p in (other, *other.parents) if p.exists())
            return mine.stat().st_dev == theirs.stat().st_dev
        except (OSError, StopIteration):
            return False

    def heads(self, problem: Problem) -> list[Head]:
        try:
            data = json.loads(self.path.read_text())
            return [(int(data["seq"]), str(data["hash"]), self.name, self.name)]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            problem(f"{self.name} is unreadable ({type(exc).__name__}): it is written atomically, "
                    f"so it was changed by hand")
            return []


@dataclass
class S3Anchor:
    """An anchor object in a versioned S3 bucket: its history holds every head written."""

    bucket: str
    key: str
    _client: Any = None

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        return f"external anchor {self.url}"

    def client(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config as BotoConfig

            # Bounded: an append never hangs on the anchor.
            self._client = boto3.client("s3", config=BotoConfig(
                retries={"max_attempts": 2}, connect_timeout=10, read_timeout=30, s3={"addressing_style": "path"}))
        return self._client

    def write(self, head: dict[str, Any]) -> None:
        self.client().put_object(Bucket=self.bucket, Key=self.key, Body=_dump(head).encode("ascii"),
                                 ContentType="application/json")

    def heads(self, problem: Problem) -> list[Head]:
        """Every head in the object's history, oldest first; a deletion or garbled version is a problem."""
        from transfers.retention.s3 import _errors, key_versions

        s3 = self.client()
        try:
            status = s3.get_bucket_versioning(Bucket=self.bucket).get("Status")
            versions = key_versions(s3, self.bucket, self.key)
            versions.sort(key=lambda v: v["LastModified"])
            found: list[Head] = []
            for version in versions:
                when = f"{version['LastModified']:%Y-%m-%d %H:%M:%S}"
                if version["marker"]:
                    problem(f"{self.name} was deleted at {when} (a delete marker); its earlier versions still "
                            f"count, but find out who deleted it")
                    continue
                body = s3.get_object(Bucket=self.bucket, Key=self.key, VersionId=version["VersionId"])["Body"].read()
                label = f"{self.name} (version of {when})"
                try:
                    data = json.loads(body)
                    found.append((int(data["seq"]), str(data["hash"]), label, self.name))
                except (ValueError, KeyError, TypeError):
                    problem(f"{label} is not a ledger head: it was written by something else")
        except Exception as exc:  # boto3 raises many kinds; all become ours
            raise _errors("reading the ledger anchor", self.url, exc) from None
        if status != "Enabled":
            problem(f"{self.name}: versioning is {status or 'off'} on bucket {self.bucket}, so an overwritten "
                    f"anchor leaves no history; turn versioning on (and Object Lock)")
        return found


def open_anchor(url: str | None) -> FileAnchor | S3Anchor | None:
    """The external anchor ``TRANSFERS_LEDGER_ANCHOR_URL`` names, or None when it is not set.

    Raises:
        ConfigError: The value is neither an absolute file path nor ``s3://bucket/key``.
    """
    if not url:
        return None
    if url.startswith("s3://"):
        bucket, _, key = url[5:].partition("/")
        if not bucket or not key or key.endswith("/"):
            raise ConfigError(f"TRANSFERS_LEDGER_ANCHOR_URL {url!r}: use s3://bucket/key (an object, not a folder)")
        return S3Anchor(bucket, key)
    if "://" in url:
        raise ConfigError(f"TRANSFERS_LEDGER_ANCHOR_URL {url!r}: only a file path or s3://bucket/key is supported")
    path = Path(url)
    if not path.is_absolute() or "\x00" in url:
        raise ConfigError(f"TRANSFERS_LEDGER_ANCHOR_URL {url!r}: give an absolute path on another volume")
    return FileAnchor(path)


def write_heads(entry: Entry, table: str, anchor_path: Path | None, external: FileAnchor | S3Anchor | None) -> None:
    """Record ``entry`` as the head beside the ledger, then in the external anchor.

    Atomic, and never moving the local file backwards (see ``write_head_file``).
    A failure is logged, not raised: the entry is committed, and an anchor left
    behind is only a problem if the table ends before it.
    """
    head = {"seq": entry.seq, "hash": entry.hash, "table": table, "at": iso(entry.at)}
    if anchor_path is not None:
        try:
            write_head_file(anchor_path, head)
        except OSError as exc:
            log.error("ledger anchor not written", anchor=str(anchor_path), seq=entry.seq,
                      error=exc.strerror or str(exc))
    if external is not None:
        try:
            external.write(head)
        except Exception as exc:  # OSError or any boto3 error: logged, the entry stands
            log.error("external ledger anchor not written", anchor=external.name, seq=entry.seq,
                      error=type(exc).__name__)


def read_head_file(path: Path | None, problem: Problem, count: Callable[[], int]) -> tuple[int, str] | None:
    """The head in the file beside the ledger; a missing file is a problem only if ``count()`` entries exist."""
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
        return int(data["seq"]), str(data["hash"])
    except FileNotFoundError:
        if entries := count():
            problem(f"anchor {path} is missing but the ledger has {entries} entries (deleted?)")
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem(f"anchor {path} is unreadable ({type(exc).__name__}): it is written atomically, "
                f"so it was changed by hand")
        return None
