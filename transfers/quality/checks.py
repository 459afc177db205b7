"""The checks derived from an agreement's field checks and quality policy (one per switch)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality.gxrun import gx
from transfers.quality.rules import _FORMATS, _KEY_COLUMN, _derived, _meta, _midnight, _number, _whole_match


@dataclass(frozen=True)
class Check:
    """One check derived from the agreement.

    Attributes:
        id: stable name, ``<dimension>.<kind>.<field>`` (used in reports and GX ``meta.check``).
        dimension: one of the six characteristics.
        description: what is expected, in plain English, for the data owner.
        field: the agreed field it concerns, if any.
        scope: ``rows`` (each record judged by GX) or ``extract`` (the whole extract: judged by GX on its
            column names when it has an expectation, by our code otherwise).
        expectation: the GX expectation for a row check or a column-name check.
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



def plan_checks(flow: Flow, *, logical_date: date) -> list[Check]:
    """Every check for ``flow`` on ``logical_date``, row and extract checks, in the protocol's order."""
    E = gx.expectations
    day = logical_date.isoformat()
    after_day = _midnight(logical_date + timedelta(days=1))
    checks: list[Check] = []

    def row(dimension: str, kind: str, name: str | None, description: str, expectation_cls: Any, **kwargs: Any) -> None:
        check_id = f"{dimension}.{kind}.{name}" if name else f"{dimension}.{kind}"
        share = flow.fields[name].checks.mostly if name else 1.0
        if dimension != "completeness" and share < 1.0:
            # the field's tolerance: this share of the records judged must pass
            kwargs["mostly"] = share
            description += f" (at least {share:.0%} of records)"
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
        if c.after is not None:
            row(
                "accuracy",
                "order",
                name,
                f"{name} is not before {c.after} (on the same record)",
                E.ExpectColumnValuesToBeInSet,
                column=_derived("order", name),
                value_set=[True],
            )
        if c.districts is not None:
            shown = ", ".join(c.districts[:12]) + (f" and {len(c.districts) - 12} more" if len(c.districts) > 12 else "")
            row(
                "accuracy",
                "district",
                name,
                f"{name} is in a district of the reference list ({shown})",
                E.ExpectColumnValuesToBeInSet,
                column=_derived("district", name),
                value_set=list(c.districts),
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
            elif c.max is not None:
                words = f"is at most {_number(c.max)}"
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
            since = c.recent.before(_midnight(logical_date))
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
                since = flow.quality.max_age.before(_midnight(logical_date))
                extract(
                    "timeliness",
                    "max_age",
                    name,
                    f"the newest {name} is no older than {flow.quality.max_age} before the logical date "
                    f"(on or after {since.date().isoformat()}): the extract is not stale",
                )
    # Relevance judges the column names, so GX validates them as table expectations on the extract's
    # columns (see transfers.quality.relevance), not on each record.
    for name in flow.fields:
        check_id = f"relevance.present.{name}"
        checks.append(Check(check_id, "relevance", f"the agreed field {name} is a column of the extract", field=name,
                            scope="extract",
                            expectation=E.ExpectColumnToExist(column=name, meta=_meta("relevance", check_id))))
    checks.append(Check("relevance.no_extra", "relevance",
                        f"the extract has no column beyond the {len(flow.fields)} agreed fields", scope="extract",
                        expectation=E.ExpectTableColumnsToMatchSet(column_set=list(flow.fields), exact_match=True,
                                                                   meta=_meta("relevance", "relevance.no_extra"))))
    extract("completeness", "rows", None, "the extract has at least one record")
    q = flow.quality
    if q.row_count_drift is not None:
        extract(
            "reliability",
            "row_count",
            None,
            f"the row count is within {q.row_count_drift:.0%} of the median of the last {q.history_runs} runs",
        )
    if q.null_rate_drift is not None:
        for name in flow.fields:
            extract(
                "reliability",
                "null_rate",
                name,
                f"the share of records missing {name} is at most {q.null_rate_drift:.0%} above its average "
                f"over the last {q.history_runs} runs",
            )

    order = {d: i for i, d in enumerate(DIMENSIONS)}
    return sorted(checks, key=lambda ch: order[ch.dimension])  # stable: field order kept within a characteristic
