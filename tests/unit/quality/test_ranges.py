"""plan_ranges: the extract's staging parts grouped into the mapped quality and prepare tasks' ranges."""

from __future__ import annotations

import pytest

from transfers.quality.mapped import plan_ranges


@pytest.mark.parametrize("part_rows, size, expected", [
    # (first staging part, stop, first row, rows): whole parts, cut once a range has ``size`` rows
    ([7, 7, 7, 7, 7, 5], 10, [(0, 2, 0, 14), (2, 4, 14, 14), (4, 6, 28, 12)]),
    ([10, 10, 10], 10, [(0, 1, 0, 10), (1, 2, 10, 10), (2, 3, 20, 10)]),
    ([50_000] * 5, 250_000, [(0, 5, 0, 250_000)]),
    ([300, 5], 100, [(0, 1, 0, 300), (1, 2, 300, 5)]),  # a part bigger than the size is a range alone
    ([3], 10, [(0, 1, 0, 3)]),
    ([], 10, [(0, 0, 0, 0)]),  # no parts: one empty range, so the seal still judges (and reports) the extract
])
def test_ranges_cover_every_part_once_in_order(part_rows, size, expected):
    ranges = plan_ranges(part_rows, size)

    assert ranges == expected
    assert sum(rows for *_rest, rows in ranges) == sum(part_rows)
