"""Receive one delivery of an inbound flow for one logical date.

PLACEHOLDER on the i11-party branch: the signature the receive DAG calls; the lead's branch holds the body.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transfers.agreement import Config, FlowRef
    from transfers.flowrun import Resolvers
    from transfers.ledger import Ledger
    from transfers.settings import Settings


def receive(settings: Settings, config: Config, ref: FlowRef, logical_date: date, resolvers: Resolvers,
            ledger: Ledger, me: str) -> Mapping[str, Any]:
    """Collect, verify and load the delivery of ``ref`` for ``logical_date`` sent to ``me``; return its receipt.

    Returns:
        ``{"status": ..., "rows": ...}``: small values only (they become the task's XCom).

    Raises:
        DeliveryPending: no complete delivery in the inbox yet (retriable: the sensor looks again later).
    """
    raise NotImplementedError("transfers.receive.run.receive is written on the lead's branch")
