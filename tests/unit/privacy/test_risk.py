"""k-anonymity counting: the smallest group over every batch, and nothing to block when there are no rows."""

from __future__ import annotations

import pandas as pd

from transfers.agreement import DisclosureRisk
from transfers.privacy.risk import GroupCounter, smallest_group

POLICY = DisclosureRisk(quasi_identifiers=["yob", "district"], min_k=3, on_failure="block")


def test_k_is_the_smallest_group_over_all_batches():
    a = pd.DataFrame({"yob": ["2012", "2012", "2013"], "district": ["S60", "S60", "S61"]})
    b = pd.DataFrame({"yob": ["2013", "2013", None], "district": ["S61", "S61", "S60"]})
    counter = GroupCounter(POLICY)
    counter.add(a)
    counter.add(b)
    result = counter.result()
    assert (result.k, result.groups, result.rows) == (1, 3, 6)  # the null birth year is a group of one
    assert not result.passed
    assert smallest_group(b.iloc[:2], POLICY).k == 2


def test_no_rows_means_no_k_and_nothing_to_block():
    result = smallest_group(pd.DataFrame({"yob": [], "district": []}), POLICY)
    assert result.k is None and result.passed
