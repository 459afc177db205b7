"""The recipient's SFTP server: copies the sender delivered and may remove once their period ends.

What is there comes from the ledger (each disclosure lists its files, and a
delivery intent those of an upload that never reached its disclosure), not
from listing the server: the sender only ever deletes what it can show it
sent. With each file goes the temporary upload a cut attempt left beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from transfers.agreement import FlowRef
from transfers.connections import ConnInfo
from transfers.durations import Duration
from transfers.ledger.records import DeliveryIntent, Disclosure, Purged
from transfers.retention.items import PurgeItem

if TYPE_CHECKING:
    from transfers.ledger import Ledger
    from transfers.settings import Settings


def held(ref: FlowRef, ledger: Ledger, period: Duration) -> Iterator[PurgeItem]:
    """Each delivered file not yet recorded as purged, with its due date."""
    if not ref.flow.retention.remote.sender_may_remove:
        return  # the recipient's copy is the recipient's to remove
    rule = f"retention.remote {period}"
    # An intent whose disclosure was never recorded: its files may be at the recipient all the same.
    unfinished = (i for i in ledger.records(DeliveryIntent, flow=ref.key) if ledger.find(i.disclosure_key) is None)
    sent: tuple[Iterable[Disclosure | DeliveryIntent], ...] = (ledger.records(Disclosure, flow=ref.key), unfinished)
    for records in sent:
        for record in records:
            if (record.host or "").startswith("mesh:"):
                # A MESH message leaves MESH when the recipient acknowledges it (or MESH expires it unread):
                # there is no copy on a server of the recipient's for the sender to remove.
                continue
            at = record.when
            due = period.after(at)
            for item in record.files:
                if ledger.find(Purged.remote_key(ref.key, record.recipient, item.remote_path)) is None:
                    yield PurgeItem("remote", ref.key, item.remote_path, at, due, rule, record.recipient,
                                    item.size, item.sha256,
                                    record.logical_date, "sftp")


def delete_group(items: list[PurgeItem], ref: FlowRef, connection: Callable[[str], ConnInfo],
                 record: Callable[[PurgeItem, int | None, str | None, str, str | None], None],
                 fail: Callable[[PurgeItem, str], None], *, settings: Settings | None = None) -> int:
    """Delete one recipient's due copies over one connection; returns how many were recorded.

    ``settings`` gives the SFTP timeout (``TRANSFERS_SFTP_TIMEOUT`` when not given).
    """
    from transfers.delivery import SftpTarget, discard_partial, open_sftp, remove_remote
    from transfers.errors import TransferError

    partner = items[0].recipient or ""
    recipient = next((r for r in ref.flow.to if r.partner == partner), None)
    if recipient is None:
        for item in items:
            fail(item, f"{partner} is no longer a recipient of {ref.key}: its connection is unknown; delete by hand")
        return 0
    done, handled = 0, set()
    try:
        target = SftpTarget.from_connection(connection(recipient.sftp_connection), recipient, settings=settings)
        with open_sftp(target) as session:
            for item in items:
                try:
                    existed = remove_remote(session, item.path)
                    debris = discard_partial(session, item.path)
                except TransferError as exc:
                    if exc.retriable:
                        raise
                    handled.add(item.path)
                    fail(item, str(exc))
                    continue
                handled.add(item.path)
                note = None if existed else "already absent (collected by the recipient)"
                if debris:
                    note = "; ".join(filter(None, [note, "the temporary upload a cut attempt left beside it "
                                                         "was removed too"]))
                record(item, item.size, item.sha256, "absent after deletion (SFTP stat: no such file)", note)
                done += 1
    except TransferError as exc:
        for item in items:
            if item.path not in handled:
                fail(item, str(exc))
    return done
