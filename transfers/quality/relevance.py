"""Relevance: the extract's columns against the agreed set, judged by Great Expectations.

The agreed fields become table expectations (``expect_column_to_exist`` per
field, ``expect_table_columns_to_match_set`` for the whole set), tagged
``meta.dimension: relevance`` like every other check, so the suite that runs
and the one ``transfers expectations export`` writes carry all six
characteristics. They judge the column names only, so each distinct column
list is validated once, as a frame with no rows: no record reaches them.

Column names can be data (a CSV read without its header row), so GX's
result is read for names only and they are shown only through
:func:`~transfers.quality.extract_checks._describe_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from transfers.agreement import Flow
from transfers.quality.checks import Check
from transfers.quality.extract_checks import _describe_columns
from transfers.quality.gxrun import _batch_definition, _raised, gx
from transfers.quality.outcome import CheckResult


def is_column_check(check: Check) -> bool:
    """A check GX judges on the extract's column names (not on each record)."""
    return check.scope == "extract" and check.expectation is not None


class ColumnChecks:
    """Validates each distinct column list of the extract's batches, and judges the relevance checks."""

    def __init__(self, flow: Flow, checks: Sequence[Check]) -> None:
        self.flow = flow
        mine = [ch for ch in checks if is_column_check(ch)]
        self.suite = gx.ExpectationSuite(name=f"{flow.id}.columns", expectations=[ch.expectation for ch in mine])
        self.any = bool(mine)
        self.seen: set[tuple[str, ...]] = set()
        self.failed: set[str] = set()
        self.errors: set[str] = set()
        self.extra: set[str] = set()
        self.missing: set[str] = set()
        self.repeated: set[str] = set()

    def see(self, names: list[str]) -> None:
        """Validate a batch's column names (once per distinct list)."""
        # GX sees a set of names; a name given twice is ours to find.
        self.repeated |= {c for c in names if names.count(c) > 1}
        key = tuple(names)
        if not self.any or key in self.seen:
            return
        self.seen.add(key)
        frame = pd.DataFrame({name: pd.Series([], dtype=object) for name in dict.fromkeys(names)})
        result = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(self.suite)
        for res in result.results:
            check_id = res.expectation_config.meta["check"]
            if _raised(res.exception_info):
                self.errors.add(check_id)
                continue
            details = ((res.result or {}).get("details") or {}).get("mismatched") or {}
            self.extra |= {str(c) for c in details.get("unexpected") or []}
            self.missing |= {str(c) for c in details.get("missing") or []}
            if not res.success:
                self.failed.add(check_id)

    def judge(self, check: Check, batches: int) -> CheckResult:
        """One relevance check's result over every batch seen."""
        note: str | None = None
        ok: bool | None
        if batches == 0:
            ok, note = None, "no batch was read"
        elif check.id in self.errors:
            ok, note = None, "could not be evaluated by Great Expectations"
        elif check.id.startswith("relevance.no_extra"):
            # GX fails the set for a missing column too; that is the field's own check, as before.
            ok = not (self.extra or self.repeated)
            if not ok:
                note = _describe_columns(self.extra, self.repeated, all_missing=self.missing >= set(self.flow.fields))
        else:
            ok = check.id not in self.failed
            note = None if ok else "column missing from the extract"
        return CheckResult(check.id, check.dimension, check.description, check.field, "extract", None, None, ok, note)
