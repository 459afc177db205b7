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
  the agreed ones, it is not stale). They are a few comparisons in our code,
  made once every batch has been seen.

This is the only module that imports great_expectations. GX results carry the
failing values (personal data), so they are read here for counts and row
numbers only and never leave: :meth:`QualityOutcome.summary` and the reports
hold counts, field names and the agreement's own words; quarantined rows are
named by their record keys, which stay in memory for the pipeline.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from transfers.agreement import DIMENSIONS, Flow
from transfers.durations import parse_duration

# Set before the import: no usage statistics may leave this machine, whatever
# the environment says (GX 1.x reads the variable when a context is built).
os.environ["GX_ANALYTICS_ENABLED"] = "false"

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)

# GX logs exceptions raised inside expectations, and an exception text can quote
# a cell; our results already say which check could not be evaluated.
logging.getLogger("great_expectations").setLevel(logging.CRITICAL)

Outcome = Literal["pass", "warn", "quarantine", "block"]

# --------------------------------------------------------------------------- value rules

_POSTCODE = r"(?i)^(?:GIR ?0AA|(?:[A-Z][0-9]{1,2}|[A-Z][A-HJ-Y][0-9]{1,2}|[A-Z][0-9][A-Z]|[A-Z][A-HJ-Y][0-9][A-Z]?) ?[0-9][A-Z]{2})$"
_FORMATS: dict[str, tuple[str, str]] = {
    # format -> (regular expression, plain English); date and datetime are parsed instead (see _Preparer)
    "postcode": (_POSTCODE, "is a UK postcode"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "is an email address"),
    "integer": (r"^[+-]?[0-9]+$", "is a whole number"),
    "number": (r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$", "is a number"),
}
_DATE_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_DATETIME_TEXT = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")

# Two independent 64-bit hashes make a 128-bit key hash: a false "duplicate"
# (which could block a transfer) is then vanishingly unlikely at any row count.
_HASH_KEYS = ("isp-transfers-k1", "isp-transfers-k2")

# Counts and row numbers only. ``exclude_unexpected_values`` and a zero
# ``partial_unexpected_count`` keep the failing values out of the result;
# COMPLETE is needed for ``unexpected_index_list`` (positions, since every
# batch is validated with a fresh 0..n-1 index), which quarantine maps to keys.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


def nhs_number_valid(value: str) -> bool:
    """True if ``value`` is ten digits (spaces ignored) with a valid Modulus 11 check digit.

    Weights 10..2 on the first nine digits; check = 11 - (sum mod 11); 11 means
    0 and 10 means no valid number has these nine digits.
    """
    digits = value.replace(" ", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def _whole_match(pattern: str) -> str:
    """The agreement says the value must match: anchor the pattern at both ends.

    GX searches (``re.search``) so an unanchored pattern would match a part of a
    value. Leading global flags such as ``(?i)`` must stay first.
    """
    flags = _LEADING_FLAGS.match(pattern)
    head = flags.group(0) if flags else ""
    return rf"{head}\A(?:{pattern[len(head) :]})\Z"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --------------------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Check:
    """One check derived from the agreement.

    Attributes:
        id: stable name, ``<dimension>.<kind>.<field>`` (used in reports and GX ``meta.check``).
        dimension: one of the six characteristics.
        description: what is expected, in plain English, for the data owner.
        field: the agreed field it concerns, if any.
        scope: ``rows`` (each record judged by GX) or ``extract`` (the whole extract, judged by our code).
        expectation: the GX expectation for a row check.
        mostly: share of judged records that must pass.
        counts_nulls: completeness judges missing values; every other check skips them.
    """

    id: str
    dimension: str
    description: str
    field: str | None = None
    scope: Literal["rows", "extract"] = "rows"
    expectation: Any = None
    mostly: float = 1.0
    counts_nulls: bool = False


def _derived(kind: str, name: str) -> str:
    # Derived columns live beside the agreed fields in the frame GX validates;
    # the double-underscore prefix keeps them apart from any sensible field name.
    return f"__q_{kind}__{name}"


_KEY_COLUMN = "__q_key__"


def _meta(dimension: str, check_id: str) -> dict[str, str]:
    return {"dimension": dimension, "check": check_id}


def plan_checks(flow: Flow, *, logical_date: date) -> list[Check]:
    """Every check for ``flow`` on ``logical_date``, row and extract checks, in the protocol's order."""
    E = gx.expectations
    day = logical_date.isoformat()
    after_day = _midnight(logical_date + timedelta(days=1))
    checks: list[Check] = []

    def row(dimension: str, kind: str, name: str | None, description: str, expectation_cls: Any, **kwargs: Any) -> None:
        check_id = f"{dimension}.{kind}.{name}" if name else f"{dimension}.{kind}"
        checks.append(
            Check(
                id=check_id,
                dimension=dimension,
                description=description,
                field=name,
                expectation=expectation_cls(**kwargs, meta=_meta(dimension, check_id)),
                mostly=kwargs.get("mostly", 1.0),
                counts_nulls=dimension == "completeness",
            )
        )

    def extract(dimension: str, kind: str, name: str | None, description: str) -> None:
        check_id = f"{dimension}.{kind}.{name}" if name else f"{dimension}.{kind}"
        checks.append(Check(check_id, dimension, description, field=name, scope="extract"))

    key = flow.key_fields
    for name, spec in flow.fields.items():
        c = spec.checks
        # accuracy
        if c.nhs_number:
            row(
                "accuracy",
                "nhs_number",
                name,
                f"{name} is a valid NHS number (10 digits, Modulus 11 check digit)",
                E.ExpectColumnValuesToBeInSet,
                column=_derived("nhs", name),
                value_set=[True],
            )
        if c.not_future:
            row(
                "accuracy",
                "not_future",
                name,
                f"{name} is not after the logical date ({day})",
                E.ExpectColumnValuesToBeBetween,
                column=_derived("when", name),
                max_value=after_day,
                strict_max=True,
            )
        if c.not_before is not None:
            row(
                "accuracy",
                "not_before",
                name,
                f"{name} is not before {c.not_before.isoformat()}",
                E.ExpectColumnValuesToBeBetween,
                column=_derived("when", name),
                min_value=_midnight(c.not_before),
            )
        # validity
        if c.format in ("date", "datetime"):
            shape = "a date written YYYY-MM-DD" if c.format == "date" else "a date and time written YYYY-MM-DDTHH:MM:SS"
            row(
                "validity",
                "format",
                name,
                f"{name} is {shape}",
                E.ExpectColumnValuesToBeInSet,
                column=_derived("parsed", name),
                value_set=[True],
            )
        elif c.format is not None:
            regex, words = _FORMATS[c.format]
            row(
                "validity",
                "format",
                name,
                f"{name} {words}",
                E.ExpectColumnValuesToMatchRegex,
                column=name,
                regex=regex,
            )
        if c.pattern is not None:
            row(
                "validity",
                "pattern",
                name,
                f"{name} matches the pattern {c.pattern}",
                E.ExpectColumnValuesToMatchRegex,
                column=name,
                regex=_whole_match(c.pattern),
            )
        if c.in_ is not None:
            allowed = [str(v) for v in c.in_]
            row(
                "validity",
                "in",
                name,
                f"{name} is one of: {', '.join(allowed)}",
                E.ExpectColumnValuesToBeInSet,
                column=name,
                value_set=allowed,
            )
        if c.min is not None or c.max is not None:
            if c.min is not None and c.max is not None:
                words = f"is between {_number(c.min)} and {_number(c.max)}"
            elif c.min is not None:
                words = f"is at least {_number(c.min)}"
            else:
                words = f"is at most {_number(c.max)}"  # type: ignore[arg-type]
            row(
                "validity",
                "range",
                name,
                f"{name} {words} (where it is a number)",
                E.ExpectColumnValuesToBeBetween,
                column=_derived("number", name),
                min_value=c.min,
                max_value=c.max,
            )
        if c.max_length is not None:
            row(
                "validity",
                "max_length",
                name,
                f"{name} is at most {c.max_length} characters long",
                E.ExpectColumnValueLengthsToBeBetween,
                column=name,
                max_value=c.max_length,
            )
        # reliability: a single-field record key that is also unique: true is one check, not two
        if c.unique and key != [name]:
            row(
                "reliability",
                "unique",
                name,
                f"{name} is unique across the whole extract",
                E.ExpectColumnValuesToBeInSet,
                column=_derived("first", name),
                value_set=[True],
            )
        # timeliness
        if c.recent is not None:
            since = parse_duration(c.recent).before(_midnight(logical_date))
            row(
                "timeliness",
                "recent",
                name,
                f"{name} is within {c.recent} before the logical date (on or after {since.date().isoformat()})",
                E.ExpectColumnValuesToBeBetween,
                column=_derived("when", name),
                min_value=since,
            )
        # completeness
        if c.required is not False:
            share = 1.0 if c.required is True else float(c.required)
            words = "every record" if share == 1.0 else f"at least {share:.0%} of records"
            row(
                "completeness",
                "required",
                name,
                f"{name} is present on {words}",
                E.ExpectColumnValuesToNotBeNull,
                column=name,
                mostly=share,
            )

    key_words = key[0] if len(key) == 1 else "(" + ", ".join(key) + ")"
    row(
        "reliability",
        "record_key",
        None,
        f"the record key {key_words} is unique across the whole extract",
        E.ExpectColumnValuesToBeInSet,
        column=_KEY_COLUMN,
        value_set=[True],
    )

    if flow.quality.max_age is not None:
        for name, spec in flow.fields.items():
            if spec.checks.recent is not None:
                since = parse_duration(flow.quality.max_age).before(_midnight(logical_date))
                extract(
                    "timeliness",
                    "max_age",
                    name,
                    f"the newest {name} is no older than {flow.quality.max_age} before the logical date "
                    f"(on or after {since.date().isoformat()}): the extract is not stale",
                )
    for name in flow.fields:
        extract("relevance", "present", name, f"the agreed field {name} is a column of the extract")
    extract("relevance", "no_extra", None, f"the extract has no column beyond the {len(flow.fields)} agreed fields")
    extract("completeness", "rows", None, "the extract has at least one record")

    order = {d: i for i, d in enumerate(DIMENSIONS)}
    return sorted(checks, key=lambda ch: order[ch.dimension])  # stable: field order kept within a characteristic


def build_suite(flow: Flow, *, logical_date: date) -> list[Any]:
    """The GX expectations for ``flow``'s row checks, each with ``meta.dimension`` and ``meta.check``.

    Some read a column our code derives per batch (``__q_<kind>__<field>``);
    they are meant for batches prepared by :func:`check_quality`.
    """
    return [ch.expectation for ch in plan_checks(flow, logical_date=logical_date) if ch.expectation is not None]


# --------------------------------------------------------------------------- per-batch preparation


class _Preparer:
    """Turns a source batch into the frame GX validates, and keeps cross-batch state.

    The frame holds only the agreed fields (blank text counted as missing, an
    absent column as all missing) plus derived columns: parsed dates, numbers,
    NHS number validity, and "first time this key is seen in the run". A
    derived column rather than a custom GX expectation: it keeps the rule in
    plain, tested Python, needs no GX metric registry, and uniqueness across
    batches needs our state anyway. GX then counts, applies ``mostly`` and
    returns the failing rows like for any built-in expectation.
    """

    def __init__(self, flow: Flow, checks: Sequence[Check]) -> None:
        self.flow = flow
        cols = {ch.expectation.column for ch in checks if ch.expectation is not None}
        self.when = [n for n in flow.fields if _derived("when", n) in cols or _derived("parsed", n) in cols]
        self.nhs = [n for n in flow.fields if _derived("nhs", n) in cols]
        self.numbers = [n for n in flow.fields if _derived("number", n) in cols]
        self.unique = [n for n in flow.fields if _derived("first", n) in cols]
        self.recent = [n for n, s in flow.fields.items() if s.checks.recent is not None]
        self.seen: dict[str, set[int]] = {name: set() for name in self.unique}
        self.seen_keys: set[int] = set()
        self.newest: dict[str, pd.Timestamp | None] = dict.fromkeys(self.recent)

    def prepare(self, batch: pd.DataFrame) -> pd.DataFrame:
        n = len(batch)
        source = batch.reset_index(drop=True)
        source.columns = [str(c) for c in source.columns]
        source = source.loc[:, ~source.columns.duplicated()]
        data: dict[str, pd.Series] = {}
        for name in self.flow.fields:
            data[name] = _blank_to_null(source[name]) if name in source.columns else pd.Series([None] * n, dtype=object)
        for name in self.when:
            fmt = self.flow.fields[name].checks.format
            ok, parsed = _parse_when(data[name], fmt if fmt in ("date", "datetime") else None)
            data[_derived("parsed", name)] = ok
            data[_derived("when", name)] = parsed
            if name in self.newest and parsed.notna().any():
                top = parsed.max()
                current = self.newest[name]
                self.newest[name] = top if current is None or top > current else current
        for name in self.nhs:
            data[_derived("nhs", name)] = _map_present(data[name], lambda v: nhs_number_valid(str(v)))
        for name in self.numbers:
            data[_derived("number", name)] = pd.to_numeric(data[name], errors="coerce")
        for name in self.unique:
            data[_derived("first", name)] = self._first_seen(pd.DataFrame({name: data[name]}), self.seen[name])
        key = pd.DataFrame({k: data[k] for k in self.flow.key_fields})
        data[_KEY_COLUMN] = self._first_seen(key, self.seen_keys)
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    @staticmethod
    def _first_seen(frame: pd.DataFrame, seen: set[int]) -> pd.Series:
        """True where the key is new to the run, False where an earlier row (any batch) had it, None if null."""
        if frame.empty:
            return pd.Series([], dtype=object)
        null = frame.isna().any(axis=1).to_numpy()
        h1, h2 = (pd.util.hash_pandas_object(frame, index=False, hash_key=k).to_numpy() for k in _HASH_KEYS)
        out: list[bool | None] = []
        for is_null, a, b in zip(null, h1.tolist(), h2.tolist(), strict=True):
            if is_null:
                out.append(None)
                continue
            digest = (a << 64) | b
            if digest in seen:
                out.append(False)
            else:
                seen.add(digest)
                out.append(True)
        return pd.Series(out, dtype=object)


def _blank_to_null(column: pd.Series) -> pd.Series:
    """Blank or whitespace-only text is a missing value, as far as the checks go."""
    out = column.astype(object).copy()
    present = out.notna()
    blank = present & out.astype(str).str.strip().eq("")
    out[~present | blank] = None
    return out


def _map_present(column: pd.Series, rule: Any) -> pd.Series:
    return pd.Series([None if v is None else bool(rule(v)) for v in column.tolist()], dtype=object)


def _parse_when(column: pd.Series, fmt: str | None) -> tuple[pd.Series, pd.Series]:
    """(is-valid flag or None, parsed naive UTC timestamps or NaT) for ISO date/datetime text."""
    text = column.astype("string")
    if fmt == "date":
        shaped = text.str.fullmatch(_DATE_TEXT)
    elif fmt == "datetime":
        shaped = text.str.fullmatch(_DATETIME_TEXT)
    else:
        shaped = text.str.fullmatch(_DATE_TEXT) | text.str.fullmatch(_DATETIME_TEXT)
    shaped = shaped.fillna(False).astype(bool)
    candidates = text.where(shaped)
    if fmt == "date":
        # strict calendar check: 2026-02-30 is shaped like a date but is not one
        parsed = pd.to_datetime(candidates, format="%Y-%m-%d", errors="coerce")
    else:
        parsed = pd.to_datetime(candidates, format="ISO8601", errors="coerce", utc=True).dt.tz_convert(None)
    parsed = pd.Series(parsed.to_numpy(dtype="datetime64[ns]"), index=column.index)
    valid = pd.Series(
        [None if gone else bool(ok) for gone, ok in zip(column.isna(), parsed.notna(), strict=True)],
        index=column.index,
        dtype=object,
    )
    return valid, parsed


# --------------------------------------------------------------------------- GX plumbing

_gx_lock = threading.Lock()
_gx_batches: Any = None


def _batch_definition() -> Any:
    """One in-memory GX context per process: no project files, no Data Docs, no progress bars."""
    global _gx_batches
    with _gx_lock:
        if _gx_batches is None:
            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            asset = context.data_sources.add_pandas("transfers").add_dataframe_asset("batch")
            _gx_batches = asset.add_batch_definition_whole_dataframe("whole")
        return _gx_batches


def _raised(info: Any) -> bool:
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


# --------------------------------------------------------------------------- results


@dataclass
class CheckResult:
    """How one check fared over the whole extract (counts only).

    ``judged`` and ``failing`` are None for extract checks; ``success`` is None
    when the check could not be judged (the note says why).
    """

    id: str
    dimension: str
    description: str
    field: str | None
    scope: str
    judged: int | None
    failing: int | None
    success: bool | None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DimensionResult:
    """One characteristic's score. ``notes`` hold field and column names, never record values."""

    dimension: str
    checks: int
    passed: int
    failed: int
    failing_rows: int
    rows: int
    policy: str
    outcome: Outcome
    notes: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "passed": self.passed,
            "failed": self.failed,
            "failing_rows": self.failing_rows,
            "policy": self.policy,
            "outcome": self.outcome,
        }


@dataclass
class QualityOutcome:
    """What :func:`check_quality` found. Only ``quarantined_keys`` names records; keep it in memory."""

    rows: int
    dimensions: dict[str, DimensionResult]
    blocked: list[str]
    quarantined_keys: set[tuple[str, ...]]
    report_html: Path | None
    report_json: Path | None
    agreement_id: str = ""
    flow_id: str = ""
    logical_date: date | None = None
    batches: int = 0
    checks: list[CheckResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Small and JSON-able, counts only: safe for the ledger, logs and XCom."""
        return {
            "agreement": self.agreement_id,
            "flow": self.flow_id,
            "logical_date": self.logical_date.isoformat() if self.logical_date else None,
            "rows": self.rows,
            "batches": self.batches,
            "blocked": list(self.blocked),
            "quarantined": len(self.quarantined_keys),
            "dimensions": {d: self.dimensions[d].counts() for d in DIMENSIONS},
        }


@dataclass
class _Tally:
    judged: int = 0
    failing: int = 0
    errors: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    keys: set[tuple[str, ...]] = field(default_factory=set)


def _mostly_met(judged: int, failing: int, mostly: float) -> bool:
    # Same rule as GX, applied to the totals of every batch; nothing judged passes.
    return judged == 0 or (judged - failing) / judged >= mostly


def _key_frame(batch: pd.DataFrame, key_fields: list[str]) -> pd.DataFrame:
    """The record keys of a batch by position, from the source values (not the checks' cleaned copy)."""
    frame = batch.reset_index(drop=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame.loc[:, ~frame.columns.duplicated()].reindex(columns=key_fields)


def _key_tuples(keys: pd.DataFrame, positions: Sequence[int]) -> set[tuple[str, ...]]:
    # The same rendering as the pipeline's ``batch[key_fields].astype(str)``, so the keys match there.
    return set(keys.iloc[list(positions)].astype(str).itertuples(index=False, name=None))


def check_quality(
    batches: Iterable[pd.DataFrame],
    flow: Flow,
    *,
    agreement_id: str,
    logical_date: date,
    report_dir: Path | None,
    history: Sequence[dict] = (),
) -> QualityOutcome:
    """Check the six characteristics over every batch and write the data owner's scorecard.

    Args:
        batches: the extract, as text (str or None) DataFrames; read once, one at a time.
        flow: the agreed flow: its field checks, record key and quality policy.
        agreement_id: for the report header.
        logical_date: the date the run is for; "future" and "recent" are judged against it.
        report_dir: where ``quality_<flow>_<date>.html`` and ``.json`` go (created 0700);
            None writes no report.
        history: earlier runs' :meth:`QualityOutcome.summary` dicts, oldest first, for the trend table.

    Returns:
        The outcome. It does not raise when a ``block`` characteristic fails:
        the caller raises ``QualityBlocked`` with ``outcome.blocked``.
    """
    checks = plan_checks(flow, logical_date=logical_date)
    by_id = {ch.id: ch for ch in checks}
    suite = gx.ExpectationSuite(
        name=f"{agreement_id}.{flow.id}", expectations=[ch.expectation for ch in checks if ch.expectation is not None]
    )
    quarantine = {d for d in DIMENSIONS if flow.quality.policy(d) == "quarantine"}
    preparer = _Preparer(flow, checks)
    tallies = {ch.id: _Tally() for ch in checks if ch.scope == "rows"}
    agreed = set(flow.fields)
    missing: set[str] = set()
    extra: set[str] = set()
    repeated: set[str] = set()
    rows = n_batches = 0

    for batch in batches:
        n_batches += 1
        names = [str(c) for c in batch.columns]
        missing |= agreed - set(names)
        extra |= set(names) - agreed
        repeated |= {c for c in names if names.count(c) > 1}
        frame = preparer.prepare(batch)
        keys: pd.DataFrame | None = None
        if len(frame):
            with warnings.catch_warnings():
                # pandas warns when an agreement's pattern has capture groups; the match is still right
                warnings.filterwarnings("ignore", "This pattern is interpreted as a regular expression", UserWarning)
                result = (
                    _batch_definition()
                    .get_batch(batch_parameters={"dataframe": frame})
                    .validate(suite, result_format=_RESULT_FORMAT)
                )
            for res in result.results:
                check = by_id[res.expectation_config.meta["check"]]
                tally = tallies[check.id]
                if _raised(res.exception_info):
                    tally.errors += 1
                    continue
                counts = res.result or {}
                element = int(counts.get("element_count") or 0)
                missing_values = int(counts.get("missing_count") or 0)
                tally.judged += element if check.counts_nulls else element - missing_values
                tally.failing += int(counts.get("unexpected_count") or 0)
                positions = counts.get("unexpected_index_list") or []
                if positions:
                    tally.rows.append(np.asarray(positions, dtype=np.int64) + rows)
                    if check.dimension in quarantine:
                        keys = _key_frame(batch, flow.key_fields) if keys is None else keys
                        tally.keys |= _key_tuples(keys, positions)
        rows += len(frame)

    results: list[CheckResult] = []
    for ch in checks:
        if ch.scope == "rows":
            t = tallies[ch.id]
            ok = t.errors == 0 and _mostly_met(t.judged, t.failing, ch.mostly)
            note = f"could not be evaluated on {t.errors} batch(es)" if t.errors else None
            results.append(
                CheckResult(ch.id, ch.dimension, ch.description, ch.field, "rows", t.judged, t.failing, ok, note)
            )
        else:
            results.append(
                _judge_extract(
                    ch,
                    flow,
                    logical_date,
                    rows=rows,
                    batches=n_batches,
                    missing=missing,
                    extra=extra,
                    repeated=repeated,
                    newest=preparer.newest,
                )
            )

    dimensions: dict[str, DimensionResult] = {}
    quarantined: set[tuple[str, ...]] = set()
    for d in DIMENSIONS:
        mine = [r for r in results if r.dimension == d]
        failed = [r for r in mine if r.success is False]
        # A record failing two checks of a characteristic counts once.
        flagged = [part for r in failed if r.scope == "rows" for part in tallies[r.id].rows]
        n_failing = int(np.unique(np.concatenate(flagged)).size) if flagged else 0
        policy = flow.quality.policy(d)
        notes = [f"{r.id}: {r.note}" for r in mine if r.note]
        if not mine:
            notes.append("the agreement sets no check of this characteristic")
        if d == "timeliness" and flow.quality.max_age and not preparer.recent:
            notes.append("quality.max_age is set but no field has a 'recent' check, so the extract's age is not judged")
        outcome: Outcome = "pass"
        if failed:
            outcome = policy
            whole = [r for r in failed if r.scope == "extract" or tallies[r.id].errors]
            if policy == "quarantine" and whole:
                # Quarantine holds back failing records; a failure of the extract as
                # a whole names no record to hold back, so nothing may be sent.
                outcome = "block"
                notes.append("a failure of the whole extract cannot be quarantined record by record: blocked")
            if outcome == "quarantine":
                for r in failed:
                    quarantined |= tallies[r.id].keys
        dimensions[d] = DimensionResult(
            d, len(mine), sum(r.success is True for r in mine), len(failed), n_failing, rows, policy, outcome, notes
        )

    outcome = QualityOutcome(
        rows=rows,
        dimensions=dimensions,
        blocked=[d for d in DIMENSIONS if dimensions[d].outcome == "block"],
        quarantined_keys=quarantined,
        report_html=None,
        report_json=None,
        agreement_id=agreement_id,
        flow_id=flow.id,
        logical_date=logical_date,
        batches=n_batches,
        checks=results,
    )
    if report_dir is not None:
        from transfers.reports import write_quality_report

        outcome.report_html, outcome.report_json = write_quality_report(
            report_document(outcome, flow), Path(report_dir), history=history
        )
    return outcome


def _judge_extract(
    check: Check,
    flow: Flow,
    logical_date: date,
    *,
    rows: int,
    batches: int,
    missing: set[str],
    extra: set[str],
    repeated: set[str],
    newest: dict[str, pd.Timestamp | None],
) -> CheckResult:
    kind = check.id.split(".")[1]
    note: str | None = None
    ok: bool | None
    if kind == "rows":
        ok = rows > 0
        note = None if ok else "the extract is empty"
    elif kind == "present":
        ok = None if batches == 0 else check.field not in missing
        note = "no batch was read" if batches == 0 else (None if ok else "column missing from the extract")
    elif kind == "no_extra":
        ok = None if batches == 0 else not (extra or repeated)
        if batches == 0:
            note = "no batch was read"
        elif not ok:
            note = _describe_columns(extra, repeated, all_missing=missing >= set(flow.fields))
    else:  # max_age
        top = newest.get(check.field or "")
        if top is None:
            ok, note = None, "no record has a readable value to judge the extract's age by"
        else:
            since = parse_duration(flow.quality.max_age or "").before(_midnight(logical_date))
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


def report_document(outcome: QualityOutcome, flow: Flow) -> dict[str, Any]:
    """The scorecard as plain data (the JSON report; the HTML is rendered from it). No record values."""
    prefixes = tuple(f"{c.id}: " for c in outcome.checks)
    return {
        "report": "data quality",
        "format": 1,
        "agreement": outcome.agreement_id,
        "flow": flow.id,
        "flow_name": flow.name,
        "from": flow.from_,
        "to": [r.partner for r in flow.to],
        "logical_date": outcome.logical_date.isoformat() if outcome.logical_date else None,
        "generated_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "rows": outcome.rows,
        "batches": outcome.batches,
        "blocked": list(outcome.blocked),
        "quarantined": len(outcome.quarantined_keys),
        "dimensions": {
            d: {
                **outcome.dimensions[d].counts(),
                "rows": outcome.rows,
                "notes": list(outcome.dimensions[d].notes),
                # the notes not already shown beside their check
                "general_notes": [n for n in outcome.dimensions[d].notes if not n.startswith(prefixes)],
            }
            for d in DIMENSIONS
        },
        "checks": [r.to_dict() for r in outcome.checks],
    }
