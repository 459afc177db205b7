"""Retention: delete what the agreement's periods say must go, and prove it.

Modules: ``purge`` (plan and carry out; the table of places is there), ``local``,
``sftp`` and ``s3`` (one per kind of place), ``archive`` (copies of encrypted
deliveries), ``running`` (markers that keep a purge off a run in progress) and
``audit`` (the retention check in ``transfers ledger verify``); at a recipient, ``received``
(received rows and quarantined deliveries, on the controller's date) and ``holds`` (legal
holds). Where a place is under the home, and which (flow, date) a copy in it belongs to, is
``transfers.settings.HomeLayout``'s to say; places are named for what they hold (``outbox``, ``runs``, ``archive``, ...).
"""

from transfers.retention.items import PLACES, PurgeItem, PurgeReport
from transfers.retention.purge import execute_purge, inventory, plan_purge

__all__ = ["PLACES", "PurgeItem", "PurgeReport", "execute_purge", "inventory", "plan_purge"]
