"""The run context every step takes: one (flow, logical date) and how its credentials are resolved.

Its own module, below the pipeline and every step, so a step can name the type
it takes (``run: FlowRun``) without importing the pipeline that composes it.
``transfers.pipeline`` re-exports both classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import SourceError
from transfers.logical_date import flow_today

if TYPE_CHECKING:
    from transfers.agreement import Config, FlowRef, Recipient
    from transfers.connections import ConnInfo
    from transfers.settings import Settings
    from transfers.staging import PartStore, Staging

__all__ = ["FlowRun", "Resolvers"]


@dataclass
class FlowRun:
    """Where one (flow, logical date) keeps its state, and the clock it uses."""

    settings: Settings
    config: Config
    ref: FlowRef
    logical_date: date
    staging_key: str | bytes
    today: date | None = None  # default: today on the flow's clock (its timezone), set below
    # A task's checkout of an S3 work store: the staging parts it fetches when a reader opens one (else None).
    stored_parts: PartStore | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.today is None:
            self.today = flow_today(self.ref.flow.timezone)

    @property
    def clock_today(self) -> date:
        """Today on the flow's clock (its timezone): the day an agreement is judged live on."""
        assert self.today is not None  # set by __post_init__
        return self.today

    @property
    def ds(self) -> str:
        return self.logical_date.isoformat()

    # Thin delegations: the layout alone knows where a run's things live under the home.
    @property
    def run_dir(self) -> Path:
        return self.settings.layout.run_dir(self.ref.agreement.id, self.ref.flow.id, self.logical_date)

    def outbox_dir(self, recipient: Recipient) -> Path:
        return self.settings.layout.outbox_dir(self.ref.agreement.id, self.ref.flow.id, self.logical_date,
                                               recipient.partner)

    @property
    def reports_dir(self) -> Path:
        return self.settings.layout.reports_dir(self.ref.agreement.id, self.ref.flow.id)

    @property
    def log_path(self) -> Path:
        return self.settings.layout.log_path(self.ref.agreement.id, self.ref.flow.id, self.logical_date)

    @property
    def staging(self) -> Staging:
        # Imported here: the DAG file imports the step list (so this module) at parse time, without pandas.
        from transfers.staging import Staging

        return Staging(self.run_dir, self.staging_key, self.stored_parts)

    @property
    def base_name(self) -> str:
        return f"{self.ref.agreement.id}_{self.ref.flow.id}_{self.ds}"

    def disclosure_key(self, recipient: Recipient) -> str:
        return f"disclosure:{self.ref.key}:{self.ds}:{recipient.partner}"

    def recipient(self, partner: str) -> Recipient:
        for recipient in self.ref.flow.to:
            if recipient.partner == partner:
                return recipient
        raise SourceError(f"flow {self.ref.key} has no recipient {partner!r}")

    def _ctx(self, **extra: object) -> dict:
        return {"flow": self.ref.key, "logical_date": self.ds, **extra}


@dataclass
class Resolvers:
    """How the caller turns ids from config into credentials."""

    connection: Callable[[str], ConnInfo]
    secret: Callable[[str], str]
