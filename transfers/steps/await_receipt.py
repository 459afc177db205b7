"""Wait for one recipient's signed receipt: collect, verify and record it (``transfers.acknowledge``).

A wait step: ``transfers run`` runs it only with ``--wait-receipt``; the DAG runs it as a
sensor in reschedule mode, so waiting holds no worker slot. ``ReceiptPending`` means
"look again later"; ``ReceiptOverdue``, ``ReceiptRejected`` and ``ReceiptInvalid`` fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transfers.acknowledge import AckResult, collect_receipt

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger


def await_receipt(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> AckResult:
    """The recipient's verified receipt for this (flow, date), recorded once in the ledger.

    Raises ``ReceiptPending`` while none is there and ``receipt_within`` has not run out.
    """
    return collect_receipt(run, resolvers, ledger, recipient)
