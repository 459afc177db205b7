"""A flow's suite: the checks derived from its agreement plus hand-written GX expectations.

Hand-written expectations live in ``expectations/<agreement>/<flow>.json`` as a
GX 1.x suite (``{"name": ..., "expectations": [{"type", "kwargs", "meta"}]}``).
Each must say which of the six characteristics it measures in
``meta.dimension``: GX has no such notion, and the data owner's scorecard is
organised by it. A missing or unknown dimension is a :class:`ConfigError`
naming the file and the expectation, found before any data is read.

Only record-level expectations (column, column-pair and multi-column map
expectations) are accepted: the extract is validated batch by batch, and a
table-level expectation (row count, column list) would be judged per batch,
not for the extract. The agreement's extract checks cover those; its agreed
column set is derived as GX table expectations (``relevance``), so the suite
carries all six characteristics.

``transfers expectations export FLOW`` writes the derived expectations into the
same file, marked ``meta.derived: true``, beside any hand-written ones. Loading
skips derived ones, since the agreement is their source (they are re-derived
each run, with the run's logical date); editing them has no effect, and the
export says so in the suite's notes.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

from transfers.agreement import DIMENSIONS, Flow
from transfers.errors import ConfigError
from transfers.files import write_atomic
from transfers.quality.checks import Check, plan_checks
from transfers.quality.gxrun import gx

_COLUMN_KWARGS = ("column", "column_A", "column_B")
_EXPORT_NOTE = (
    "Expectations with meta.derived are derived from the agreement's field checks on every run and are "
    "ignored when this file is loaded: change the agreement to change them. Add hand-written expectations "
    "(column, column-pair or multi-column map expectations) with meta.dimension set to one of: "
    + ", ".join(DIMENSIONS)
    + "."
)


def suite_path(expectations_dir: Path, agreement_id: str, flow_id: str) -> Path:
    return Path(expectations_dir) / agreement_id / f"{flow_id}.json"


def build_suite(flow: Flow, *, logical_date: date) -> list[Any]:
    """The GX expectations for ``flow``'s row checks, each with ``meta.dimension`` and ``meta.check``.

    Some read a column our code derives per batch (``__q_<kind>__<field>``);
    they are meant for batches prepared by :func:`check_quality`.
    """
    return [ch.expectation for ch in plan_checks(flow, logical_date=logical_date) if ch.expectation is not None]


def load_expectations(path: Path, flow: Flow) -> list[Check]:
    """The hand-written expectations in ``path`` as checks; none if the file does not exist.

    Raises:
        ConfigError: every problem in the file, each naming the file and the expectation.
    """
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON suite: {exc}") from None
    items = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expectations: must be a list of GX expectations")
    problems: list[str] = []
    checks: list[Check] = []
    for i, item in enumerate(items):
        where = f"{path}: expectations[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            problems.append(f"{where}: must be an object with a 'type' (a GX expectation name)")
            continue
        kind = item["type"]
        where = f"{where} ({kind})"
        raw_meta = item.get("meta")
        meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
        if meta.get("derived"):
            continue
        dimension = meta.get("dimension")
        if dimension not in DIMENSIONS:
            found = f"{dimension!r} is not one of them" if dimension is not None else "it is missing"
            problems.append(f"{where}: meta.dimension must be one of {', '.join(DIMENSIONS)} ({found})")
            continue
        raw_kwargs = item.get("kwargs")
        kwargs: dict[str, Any] = raw_kwargs if isinstance(raw_kwargs, dict) else {}
        columns = [kwargs[k] for k in _COLUMN_KWARGS if k in kwargs] + list(kwargs.get("column_list") or [])
        unknown = [str(c) for c in columns if c not in flow.fields]
        if unknown:
            problems.append(f"{where}: column(s) {', '.join(unknown)} are not fields of flow {flow.id}")
            continue
        try:
            expectation = ExpectationConfiguration(type=kind, kwargs=kwargs, meta=meta).to_domain_obj()
        except Exception as exc:  # GX raises many types for a bad expectation
            problems.append(f"{where}: not a valid GX expectation: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        if not isinstance(expectation, ColumnMapExpectation | ColumnPairMapExpectation | MulticolumnMapExpectation):
            problems.append(
                f"{where}: only record-level (map) expectations are supported; the extract is checked batch by "
                "batch, so a table-level expectation would judge each batch, not the extract"
            )
            continue
        check_id = str(meta.get("check") or f"{dimension}.custom.{i}")
        description = str(meta.get("description") or f"{kind} on {', '.join(map(str, columns)) or 'the record'}")
        expectation.meta = {**meta, "dimension": dimension, "check": check_id}
        checks.append(
            Check(
                id=check_id,
                dimension=dimension,
                description=description,
                field=str(columns[0]) if len(columns) == 1 else None,
                expectation=expectation,
                mostly=float(kwargs.get("mostly", 1.0)),
                counts_nulls=dimension == "completeness",
            )
        )
    ids = [c.id for c in checks]
    problems += [f"{path}: meta.check {c!r} is used twice" for c in sorted({c for c in ids if ids.count(c) > 1})]
    if problems:
        raise ConfigError(problems)
    return checks


def flow_checks(
    flow: Flow, *, agreement_id: str, logical_date: date, expectations_dir: Path | None = None
) -> list[Check]:
    """Every check for the run: derived from the agreement, then the hand-written ones, by characteristic."""
    derived = plan_checks(flow, logical_date=logical_date)
    extra: list[Check] = []
    if expectations_dir is not None:
        path = suite_path(expectations_dir, agreement_id, flow.id)
        extra = load_expectations(path, flow)
        clash = {c.id for c in derived} & {c.id for c in extra}
        if clash:
            raise ConfigError(
                f"{path}: meta.check {', '.join(sorted(clash))} "
                "is the id of a check derived from the agreement; choose another id"
            )
    order = {d: i for i, d in enumerate(DIMENSIONS)}
    return sorted([*derived, *extra], key=lambda ch: order[ch.dimension])


def export_suite(flow: Flow, *, agreement_id: str, logical_date: date, expectations_dir: Path) -> Path:
    """Write the derived suite to ``expectations/<agreement>/<flow>.json``, keeping hand-written expectations.

    Returns:
        The path written.
    """
    path = suite_path(expectations_dir, agreement_id, flow.id)
    kept: list[dict[str, Any]] = []
    if path.is_file():
        load_expectations(path, flow)  # refuse to rewrite a file that does not load
        old = json.loads(path.read_text(encoding="utf-8"))
        kept = [e for e in old.get("expectations", []) if not (e.get("meta") or {}).get("derived")]
    derived = []
    for expectation in build_suite(flow, logical_date=logical_date):
        item = expectation.configuration.to_json_dict()
        item.pop("id", None)
        item["meta"] = {**item.get("meta", {}), "derived": True}
        derived.append(item)
    suite = gx.ExpectationSuite(name=f"{agreement_id}.{flow.id}")
    document = {
        "name": suite.name,
        "notes": _EXPORT_NOTE,
        "meta": {"derived_on": logical_date.isoformat(), "great_expectations_version": gx.__version__},
        "expectations": [*derived, *kept],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    # A suite file is kept with the config (and in git), not personal data: readable as before.
    write_atomic(path, json.dumps(document, indent=2, default=str) + "\n", mode=0o644)
    return path

