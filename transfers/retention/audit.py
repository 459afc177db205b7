"""Retention audit for ``transfers ledger verify``: nothing disclosed is held past its date.

For each disclosure in the ledger, each file the sender may remove was either
purged (a ``Purged`` record) or is still within its period; each archived copy
likewise; and no local copy is still on disk past its due date. Every gap is
one line naming the ledger entry, the copy and its due date.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from transfers.agreement import Config, retention_periods
from transfers.errors import ConfigError
from transfers.ledger.records import Archived, Disclosure, Purged
from transfers.retention.purge import inventory

if TYPE_CHECKING:
    from transfers.ledger import Ledger, VerifyReport
    from transfers.settings import Settings


def retention_gaps(settings: Settings, config: Config, ledger: Ledger, *, now: datetime | None = None) -> list[str]:
    """One line per copy held past its retention period, or disclosure whose copies cannot be accounted for."""
    now = now or datetime.now(UTC)
    gaps: list[str] = []
    for disclosure in ledger.records(Disclosure):
        try:
            ref = config.flow(disclosure.flow or "")
        except ConfigError:
            gaps.append(f"entry {disclosure.seq}: disclosure of {disclosure.flow} on {disclosure.logical_date}: the "
                        f"flow is no longer in the config, so the retention of its copies cannot be checked")
            continue
        remote = ref.flow.retention.remote
        if not remote.sender_may_remove:
            continue  # the recipient removes its own copy
        due = retention_periods(ref.flow)["remote"].after(disclosure.when)
        for sent in disclosure.files:
            if due <= now and ledger.find(Purged.remote_key(ref.key, disclosure.recipient, sent.remote_path)) is None:
                gaps.append(f"entry {disclosure.seq}: disclosure {ref.key} {disclosure.logical_date} to "
                            f"{disclosure.recipient}: remote copy {sent.remote_path} was due for deletion on "
                            f"{due:%Y-%m-%d} and has no purge record")
    purged_paths = {p.path for p in ledger.records(Purged)}  # one pass, not one per copy
    for copy in ledger.records(Archived):
        if copy.due > now:
            continue
        if copy.path not in purged_paths:
            gaps.append(f"entry {copy.seq}: archived copy {copy.path} was due for deletion on "
                        f"{copy.due:%Y-%m-%d} and has no purge record")
    from transfers.retention.journal import journal_path

    pending = journal_path(settings.home)
    if pending.exists():
        count = sum(1 for line in pending.read_text().splitlines() if line.strip())
        gaps.append(f"{count} deletion(s) done while the ledger was down are not yet recorded ({pending}); "
                    f"the next purge writes them")
    for item in inventory(settings, config, ledger):
        # A copy a legal hold keeps is held lawfully; the hold is in the ledger.
        if item.store in ("local", "database") and item.is_due(now) and item.hold is None:
            gaps.append(f"{item.place} copy {item.path} ({item.flow}) is still held, due for deletion on "
                        f"{item.due:%Y-%m-%d} ({item.rule})")
    return gaps



def verify_retention(settings: Settings, report: VerifyReport, on: date | None = None) -> None:
    """Add retention gaps to a ledger ``VerifyReport`` (``transfers ledger verify``).

    Args:
        settings: Runtime settings (config dir, home, ledger).
        report: The chain report; each gap becomes one problem starting ``retention:``.
        on: Check as at the end of this date instead of now (a ``date``).
    """
    from transfers.agreement import load_config

    now = datetime.combine(on, datetime.max.time(), UTC) if on else datetime.now(UTC)
    config = load_config(settings.config_dir)
    with settings.open_ledger() as ledger:
        report.problems.extend(f"retention: {gap}" for gap in retention_gaps(settings, config, ledger, now=now))
