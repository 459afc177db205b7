"""Checks of the extract as a whole (rows, staleness), judged once every batch is seen.

The columns are judged by GX (see ``relevance``); how unexpected ones are named is here.
"""

from __future__ import annotations

from datetime import date

import pandas as pd

from transfers.agreement import Flow
from transfers.quality.checks import Check
from transfers.quality.outcome import CheckResult
from transfers.quality.rules import _IDENTIFIER, _midnight


def _judge_extract(
    check: Check,
    flow: Flow,
    logical_date: date,
    *,
    rows: int,
    newest: dict[str, pd.Timestamp | None],
) -> CheckResult:
    kind = check.id.split(".")[1]
    note: str | None = None
    ok: bool | None
    if kind == "rows":
        ok = rows > 0
        note = None if ok else "the extract is empty"
    else:  # max_age
        top = newest.get(check.field or "")
        if top is None:
            ok, note = None, "no record has a readable value to judge the extract's age by"
        else:
            # checks.py plans a max_age check only when quality.max_age is set.
            assert flow.quality.max_age is not None
            since = flow.quality.max_age.before(_midnight(logical_date))
            ok = top.to_pydatetime() >= since
            if not ok:
                age = (_midnight(logical_date) - top.to_pydatetime()).days
                note = f"the newest value is {age} day(s) before the logical date: the extract looks stale"
    return CheckResult(check.id, check.dimension, check.description, check.field, "extract", None, None, ok, note)


def _describe_columns(extra: set[str], repeated: set[str], *, all_missing: bool) -> str:
    """Name unexpected columns, unless the names could be data.

    A CSV read without its header row turns the first record into column names:
    then no agreed column is found, and the names are not shown.
    """
    parts = []
    if extra:
        if all_missing:
            parts.append(
                f"{len(extra)} unexpected column(s) and no agreed column: the extract may lack its header "
                "row, so the names are not shown"
            )
        else:
            shown = sorted(c for c in extra if _IDENTIFIER.match(c))
            hidden = len(extra) - len(shown)
            text = f"unexpected column(s): {', '.join(shown)}" if shown else "unexpected column(s)"
            if hidden:
                text += f" and {hidden} whose names are not identifiers (not shown)"
            parts.append(text + " (dropped before sending by minimisation)")
    if repeated:
        shown = [] if all_missing else sorted(c for c in repeated if _IDENTIFIER.match(c))
        parts.append(f"column(s) named more than once: {', '.join(shown) or len(repeated)}")
    return "; ".join(parts)
