"""``transfers receipts``: where each disclosure's signed receipt stands, from the ledger."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.markup import escape

from transfers.cli._console import JsonFlag, fail, key, lines, load_settings, new_table, out, print_json, when
from transfers.errors import TransferError

#: How each state is shown; the detail (reason, time left, rows) follows it.
_STYLE = {"acknowledged": "green", "rejected": "bold red", "overdue": "bold red", "pending": "yellow"}


def receipts(
    flow: Annotated[str | None, typer.Option("--flow", help="only this flow (<agreement>.<flow>)")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="only disclosures without an acknowledgement "
                                                            "(pending or overdue)")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each disclosure in the ledger and its recipient's receipt: acknowledged, rejected (with the reason),
    pending (with the time left of the flow's receipt_within) or overdue; refused receipts counted.

    With --json, one line per disclosure with every field (status, detail, times, hashes, ledger entries).
    """
    from transfers.agreement import load_config
    from transfers.reports.receipts import receipt_statuses

    settings = load_settings()
    try:
        config = load_config(settings.config_dir)
        if flow is not None:
            config.flow(flow)  # an unknown flow is a usage error, not an empty table
        with settings.open_ledger() as ledger:
            states = [s for s in receipt_statuses(ledger, config, flow=flow) if not pending or s.unacknowledged]
    except TransferError as exc:
        fail(exc)
    if as_json:
        print_json({**dataclasses.asdict(s), "detail": s.detail()} for s in states)
        return
    if not states:
        out.print("no disclosures" + (" awaiting a receipt" if pending else ""))
        return
    table = new_table(key("flow, date, partner"), "delivered (UTC)", "receipt", key("refused"), title="Receipts")
    for s in states:
        style = _STYLE.get(s.status, "")
        table.add_row(lines(s.flow, s.logical_date, s.recipient), when(s.delivered_at),
                      f"[{style}]{s.status}[/]: {escape(s.detail())}", str(s.refused_receipts))
    out.print(table)
