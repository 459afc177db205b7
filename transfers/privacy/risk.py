"""Disclosure risk: k-anonymity over the quasi-identifiers of what is about to be sent.

k is the size of the smallest group of rows sharing one combination of
quasi-identifier values (e.g. birth year, sex, postcode district). A small k
means someone in the delivery could be singled out by those values alone.
Counting is done batch by batch; only the combinations are held.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pandas as pd

from transfers.agreement import DisclosureRisk
from transfers.errors import PrivacyError


@dataclass
class KResult:
    k: int | None  # None when there are no rows
    groups: int
    rows: int
    quasi_identifiers: list[str]
    min_k: int
    on_failure: str

    @property
    def passed(self) -> bool:
        return self.k is None or self.k >= self.min_k

    def to_dict(self) -> dict:
        return {"k": self.k, "groups": self.groups, "rows": self.rows, "quasi_identifiers": self.quasi_identifiers,
                "min_k": self.min_k, "on_failure": self.on_failure, "passed": self.passed}


class GroupCounter:
    """Count rows per quasi-identifier combination over batches (a null is a value of its own)."""

    def __init__(self, policy: DisclosureRisk) -> None:
        self.policy = policy
        self.counts: Counter[tuple] = Counter()
        self.rows = 0

    def add(self, batch: pd.DataFrame) -> None:
        if not len(batch):
            return
        columns = self.policy.quasi_identifiers
        missing = [c for c in columns if c not in batch.columns]
        if missing:
            raise PrivacyError(f"quasi-identifier(s) {', '.join(map(repr, missing))} are not in what is sent")
        frame = batch[columns].astype(object).where(batch[columns].notna(), None)
        self.counts.update(frame.itertuples(index=False, name=None))
        self.rows += len(batch)

    def result(self) -> KResult:
        k = min(self.counts.values()) if self.counts else None
        p = self.policy
        return KResult(k, len(self.counts), self.rows, list(p.quasi_identifiers), p.min_k, p.on_failure)


def smallest_group(frame: pd.DataFrame, policy: DisclosureRisk) -> KResult:
    """k of one data set (for checks and tests)."""
    counter = GroupCounter(policy)
    counter.add(frame)
    return counter.result()
