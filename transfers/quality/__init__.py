"""Quality: score an extract on the protocol's six characteristics with Great Expectations.

The checks come from the agreement: each ``FieldChecks`` switch becomes one
check of one characteristic (``meta.dimension``), and the flow says what a
failure of each characteristic does (``block``, ``quarantine`` or ``warn``).
:func:`check_quality` runs them over the extract batch by batch and returns a
:class:`QualityOutcome`; it never raises on a failure, so the data owner's
report is always written first and the pipeline decides (``QualityBlocked``).

Two kinds of check:

* **row checks** judge each record. They are GX expectations, validated on a
  per-batch copy of the rows. Where GX has no expectation for what the
  protocol asks (a Modulus 11 check digit, a date parsed from ISO text, a key
  seen in an *earlier* batch) our code adds a derived column to that copy and
  GX checks the derived column (see :class:`_Preparer`). Counts and failing
  row numbers are summed over batches, so ``required: 0.95`` and uniqueness
  hold for the whole extract, not for each batch.
* **extract checks** judge the extract as a whole (it has rows, its columns are
  the agreed ones, it is not stale, its row count and null rates have not
  drifted from the flow's recent runs). The columns are GX table expectations
  (``relevance``: validated on each distinct column list, with no rows); the
  rest are a few comparisons in our code, made once every batch has been seen.

Modules: ``rules`` (value rules), ``checks`` (checks derived from the
agreement), ``suite`` (merging hand-written expectations from
``expectations/``, export), ``prepare`` (per-batch derived columns), ``keys`` (the record
keys seen so far, as sorted 64-bit hashes), ``gxrun``
(GX plumbing), ``run`` (:func:`check_quality`), ``relevance`` (the columns), ``extract_checks`` and
``history`` (drift), ``outcome``, ``report`` (the scorecard's data),
``rectify`` (the rectification notice) and ``dry_run`` (``transfers check``).

Only this package imports great_expectations (through ``gxrun``, which turns
its analytics off first). GX results carry the failing values (personal data),
so they are read for counts and row numbers only and never leave:
:meth:`QualityOutcome.summary` and the scorecard hold counts, field names and
the agreement's own words. Records are named, by record key only, in two
places: the quarantine set (in memory for the pipeline) and the rectification
notice, which stays in the sender's reports directory.
"""


from transfers.quality.checks import Check, plan_checks
from transfers.quality.outcome import CheckResult, DimensionResult, Outcome, QualityOutcome
from transfers.quality.report import report_document
from transfers.quality.run import check_quality
from transfers.quality.suite import build_suite
from transfers.rules import nhs_number_valid

__all__ = [
    "Check",
    "CheckResult",
    "DimensionResult",
    "Outcome",
    "QualityOutcome",
    "build_suite",
    "check_quality",
    "nhs_number_valid",
    "plan_checks",
    "report_document",
]
