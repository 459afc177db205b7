"""What a purge works on: one held copy (``PurgeItem``) and what a purge did (``PurgeReport``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

#: Places a flow leaves copies in, in the order a purge visits them. Each is named for what it
#: holds: ``outbox`` (encrypted deliveries, until 2026-11 called "staging" here) and ``runs``
#: (encrypted working files, what ``transfers.staging`` writes) both keep ``retention.staging``.
#: At a recipient, ``received`` (a delivery's rows in the store) and ``quarantine`` (a rejected
#: delivery's files) go on the controller's date (``transfers.retention.received``).
PLACES = ("outbox", "runs", "archive", "reports", "notices", "logs", "remote", "received", "quarantine")
#: The places only a recipient has.
RECIPIENT_PLACES = ("received", "quarantine")


@dataclass(frozen=True)
class PurgeItem:
    """One copy held somewhere, with the rule that says when it must go.

    Attributes:
        place: One of ``PLACES``.
        flow: Flow key ``<agreement>.<flow>``.
        path: A local path, ``s3://bucket/key``, or a remote path relative to the SFTP home.
        created: When the copy was made.
        due: When its period ends (``created`` + period).
        rule: The agreement key and period, e.g. ``retention.staging P7D``.
        recipient: The partner holding a remote copy.
        size: Bytes, when known before deletion (remote and S3 copies, from the ledger).
        sha256: Hex digest, when known before deletion.
        day: The logical date of the run the copy belongs to, when the layout or the ledger says so.
        store: ``local``, ``s3``, ``sftp``, or ``database`` (the recipient's store).
        hold: Why it must not be deleted now although due (a legal hold), or None.
        detail: What a listing shows beside it (a received delivery's rows, its held subjects' rows).
    """

    place: str
    flow: str
    path: str
    created: datetime
    due: datetime
    rule: str
    recipient: str | None = None
    size: int | None = None
    sha256: str | None = None
    day: date | None = None
    store: str = "local"
    hold: str | None = None
    detail: str = ""

    @property
    def logical_date(self) -> str | None:
        """``day`` as the text reports, messages and the purge journal carry."""
        return self.day.isoformat() if self.day else None

    def is_due(self, now: datetime) -> bool:
        return self.due <= now


@dataclass
class PurgeReport:
    """What ``execute_purge`` did. Nothing due is left out: each item is deleted, failed or held."""

    deleted: int = 0
    failed: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # due, but a run in progress or a legal hold keeps it
    entries: list[int] = field(default_factory=list)  # ledger seq of each deletion recorded
