"""One DAG task's files in the S3 work store: its run's working files checked out and committed
(``checkout.task_files``), inside its outputs published (``outputs.published_outputs``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from transfers.workstore import checkout
from transfers.workstore.outputs import published_outputs

if TYPE_CHECKING:
    from transfers.connections import ConnInfo
    from transfers.flowrun import FlowRun


@contextmanager
def task_files(run: FlowRun, connection: Callable[[str], ConnInfo] | None = None,
               outbox_parts: bool = True) -> Iterator[FlowRun]:
    """The run as this task sees it (``checkout.task_files``, ``outbox_parts`` as there); with
    ``TRANSFERS_WORK_STORE=s3://...`` the task's reports, notices and log part are also published at its end,
    whatever the outcome, after its commit."""
    with published_outputs(run, connection), checkout.task_files(run, connection, outbox_parts) as mine:
        yield mine
