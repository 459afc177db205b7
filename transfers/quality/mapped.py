"""The quality checks as mapped parts: each part checks a range of the extract, one seal judges the whole.

:func:`check_range` runs every row check except uniqueness on one range of extract rows (a few
staging parts) and returns what the one-pass :func:`~transfers.quality.run.check_quality` would have
summed for those rows, as JSON-able state. Uniqueness is the one row check no range can judge alone: a
record key in two parts is new to each. So :func:`seal_ranges` reads the extract's key columns once, in
order, through the same spilled key index the one-pass run uses (memory fixed whatever the rows), sums
the parts' state, and judges it all with :func:`~transfers.quality.judge.judge`: one scorecard, one
rectification notice, one quarantine, exactly the checks and counts of a one-pass run.

A part's state names records (failing rows' record keys, the notice's lines): the caller keeps it only in
the run's encrypted staging, never in XCom.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality.checks import Check, plan_checks
from transfers.quality.gxrun import gx
from transfers.quality.judge import _Copies, _Tally, judge
from transfers.quality.keys import Digest, KeyIndex, key_hash
from transfers.quality.outcome import QualityOutcome
from transfers.quality.prepare import _cleaned, _flags, _objects, _Preparer, _series
from transfers.quality.rectify import PartLines, Rectification
from transfers.quality.relevance import ColumnChecks
from transfers.quality.rules import _KEY_COLUMN
from transfers.quality.run import _KEY_CHECK, _key_frame, _key_tuples, _validate_batches
from transfers.quality.suite import flow_checks
from transfers.settings import HomeLayout

__all__ = ["check_range", "plan_ranges", "seal_ranges"]

_COLUMN_SETS = ("failed", "errors", "extra", "missing", "repeated")


def plan_ranges(part_rows: Sequence[int], size: int) -> list[tuple[int, int, int, int]]:
    """Consecutive staging parts grouped into ranges of about ``size`` rows: (first part, stop, first row, rows).

    Whole staging parts only, so a range holds at least one (a part bigger than ``size`` is a range alone);
    a stage with no parts is one empty range.
    """
    ranges: list[tuple[int, int, int, int]] = []
    first = row = rows = 0
    for index, count in enumerate(part_rows):
        rows += count
        if rows >= size:
            ranges.append((first, index + 1, row, rows))
            first, row, rows = index + 1, row + rows, 0
    if first < len(part_rows) or not ranges:
        ranges.append((first, len(part_rows), row, rows))
    return ranges


def _uniqueness(checks: Sequence[Check]) -> dict[str, Check]:
    """The checks only the seal can judge: the record key, and each field that must be unique, by id."""
    return {ch.id: ch for ch in checks if ch.scope == "rows"
            and (ch.id == _KEY_CHECK or ch.id.startswith("reliability.unique."))}


def check_range(batches: Iterable[pd.DataFrame], flow: Flow, *, agreement_id: str, logical_date: date,
                expectations_dir: Path | None, start: int) -> dict[str, Any]:
    """Every row check but uniqueness over one range's batches (extract rows from ``start``): JSON-able state."""
    checks = flow_checks(flow, agreement_id=agreement_id, logical_date=logical_date, expectations_dir=expectations_dir)
    seal_only = _uniqueness(checks)
    mine = [ch for ch in checks if ch.id not in seal_only]
    suite = gx.ExpectationSuite(name=f"{agreement_id}.{flow.id}",
                                expectations=[ch.expectation for ch in mine if ch.scope == "rows"])
    columns = ColumnChecks(flow, checks)
    quarantine = {d for d in DIMENSIONS if flow.quality.policy(d) == "quarantine"}
    derived = {ch.id for ch in plan_checks(flow, logical_date=logical_date)}
    preparer = _Preparer(flow, mine, hand_written=any(ch.id not in derived for ch in checks), keys=False)
    tallies = {ch.id: _Tally() for ch in checks if ch.scope == "rows"}
    lines = PartLines(flow.key_fields)
    try:
        end, batches_seen = _validate_batches(batches, flow, checks, suite, preparer, tallies, quarantine, lines,
                                              columns, _Copies(), start)
    finally:
        preparer.close()
    lines.flush()
    return {
        "start": start,
        "rows": end - start,
        "batches": batches_seen,
        "tallies": {id_: {"judged": t.judged, "failing": t.failing, "errors": t.errors,
                          "rows": np.concatenate(t.rows).tolist() if t.rows else [],
                          "keys": sorted(list(k) for k in t.keys)}
                    for id_, t in tallies.items() if id_ not in seal_only},
        "nulls": preparer.nulls,
        "newest": {name: None if when is None else when.isoformat() for name, when in preparer.newest.items()},
        "columns": {"seen": sorted(list(c) for c in columns.seen),
                    **{name: sorted(getattr(columns, name)) for name in _COLUMN_SETS}},
        "lines": [[row, list(line)] for row, line in lines.lines],
    }


def seal_ranges(states: Sequence[dict[str, Any]], key_batches: Iterable[pd.DataFrame], flow: Flow, *,
                agreement_id: str, logical_date: date, report_dir: Path | None, history: Sequence[dict] = (),
                expectations_dir: Path | None = None, digest: Digest = key_hash,
                work_dir: Path | None = None) -> QualityOutcome:
    """Every part's state (in range order) summed, uniqueness judged over ``key_batches`` (the whole extract,
    in order), and the whole judged and reported as :func:`~transfers.quality.run.check_quality` does.

    Raises:
        ValueError: the states are not consecutive ranges, or they hold other rows than ``key_batches``.
    """
    checks = flow_checks(flow, agreement_id=agreement_id, logical_date=logical_date, expectations_dir=expectations_dir)
    seal_only = _uniqueness(checks)
    tallies = {ch.id: _Tally() for ch in checks if ch.scope == "rows"}
    columns = ColumnChecks(flow, checks)
    nulls: dict[str, int] = dict.fromkeys(flow.fields, 0)
    newest: dict[str, pd.Timestamp | None] = {n: None for n, s in flow.fields.items() if s.checks.recent is not None}
    rows = batches = 0
    for state in states:
        if state["start"] != rows:
            raise ValueError(f"a part starts at row {state['start']:,}, the one before it ends at {rows:,}")
        rows += state["rows"]
        batches += state["batches"]
        _add_state(state, tallies, columns, nulls, newest)
    quarantine = {d for d in DIMENSIONS if flow.quality.policy(d) == "quarantine"}
    copies = _Copies()
    found = PartLines(flow.key_fields)
    seen = _check_keys(key_batches, flow, seal_only, tallies, copies, found, quarantine, digest, work_dir)
    if seen != rows:
        raise ValueError(f"the parts checked {rows:,} rows, the extract has {seen:,}")

    notice = None
    rectification = None
    if report_dir is not None:
        stem = HomeLayout.report_stem(flow.id, logical_date)
        notice = Rectification(Path(report_dir), stem, flow.key_fields)
        try:
            # Each part's lines are in row order and the parts are consecutive; uniqueness's join them by row.
            parts = (tuple(line) for state in states for line in state["lines"])
            for row, line in heapq.merge(parts, sorted(found.lines, key=lambda pair: pair[0]),
                                         key=lambda pair: pair[0]):
                notice.write_line(int(row), line)
        except BaseException:
            notice.abort()
            raise
        rectification = notice.close()
    return judge(flow, checks, tallies, copies, columns, rows=rows, batches=batches, nulls=nulls, newest=newest,
                 recent=bool(newest), rectification=rectification,
                 records_to_fix=len(notice.records) if notice is not None else 0, agreement_id=agreement_id,
                 logical_date=logical_date, report_dir=report_dir, history=history, dry_run=False)


def _add_state(state: dict[str, Any], tallies: dict[str, _Tally], columns: ColumnChecks, nulls: dict[str, int],
               newest: dict[str, pd.Timestamp | None]) -> None:
    """One part's counts added to the whole's."""
    for id_, t in state["tallies"].items():
        tally = tallies[id_]
        tally.judged += t["judged"]
        tally.failing += t["failing"]
        tally.errors += t["errors"]
        if t["rows"]:
            tally.rows.append(np.asarray(t["rows"], dtype=np.int64))
        tally.keys |= {tuple(k) for k in t["keys"]}
    for name, count in state["nulls"].items():
        nulls[name] = nulls.get(name, 0) + count
    for name, when in state["newest"].items():
        if when is not None and name in newest:
            stamp = pd.Timestamp(when)
            current = newest[name]
            newest[name] = stamp if current is None or stamp > current else current
    columns.seen |= {tuple(c) for c in state["columns"]["seen"]}
    for name in _COLUMN_SETS:
        getattr(columns, name).update(state["columns"][name])


def _check_keys(batches: Iterable[pd.DataFrame], flow: Flow, seal_only: dict[str, Check], tallies: dict[str, _Tally],
                copies: _Copies, notice: PartLines, quarantine: set[str], digest: Digest,
                work_dir: Path | None) -> int:
    """Uniqueness over the whole extract, as the one-pass run's derived "first seen" columns judge it; returns rows."""
    fields = {ch.field: ch for ch in seal_only.values() if ch.id != _KEY_CHECK and ch.field}
    indexes = {name: KeyIndex(digest, directory=work_dir) for name in fields}
    keys = KeyIndex(digest, directory=work_dir)
    offset = 0
    try:
        for batch in batches:
            n = len(batch)
            source = batch.reset_index(drop=True)
            source.columns = [str(c) for c in source.columns]
            source = source.loc[:, ~source.columns.duplicated()]

            def text(name: str, source: pd.DataFrame = source, n: int = n) -> pa.Array | pd.Series:
                return _cleaned(source[name]) if name in source.columns else pa.nulls(n, pa.string())

            frame: list[pd.DataFrame] = []

            def batch_keys(batch: pd.DataFrame = batch, frame: list[pd.DataFrame] = frame) -> pd.DataFrame:
                if not frame:
                    frame.append(_key_frame(batch, flow.key_fields))
                return frame[0]

            for name, check in fields.items():
                flags, _ = _first(indexes[name], [text(name)], offset)
                _count(tallies[check.id], check, flags, [], offset, quarantine, notice, batch_keys)
            flags, firsts = _first(keys, [text(k) for k in flow.key_fields], offset)
            copies.note(pd.DataFrame({_KEY_COLUMN: flags}), batch_keys)
            if _KEY_CHECK in seal_only:
                _count(tallies[_KEY_CHECK], seal_only[_KEY_CHECK], flags, firsts, offset, quarantine, notice,
                       batch_keys)
            notice.flush()
            offset += n
    finally:
        for index in [*indexes.values(), keys]:
            index.close()
    return offset


def _first(index: KeyIndex, parts: list[pa.Array | pd.Series], offset: int) -> tuple[pd.Series, list[tuple[int, int]]]:
    """As ``_Preparer._first``: True where the key is new to the extract, False if seen, missing if incomplete."""
    missing = np.zeros(len(_series(parts[0])), dtype=bool)
    for part in parts:
        missing |= _series(part).isna().to_numpy()
    first, firsts = index.see([_objects(p) for p in parts], ~missing, offset)
    return _flags(first, missing), firsts


def _count(tally: _Tally, check: Check, flags: pd.Series, firsts: list[tuple[int, int]], offset: int,
           quarantine: set[str], notice: PartLines, batch_keys: Callable[[], pd.DataFrame]) -> None:
    """What GX counts for "the flag is True" (missing flags not judged), plus the first copies of repeated keys."""
    missing = flags.isna().to_numpy()
    positions = np.flatnonzero(~missing & ~flags.fillna(True).to_numpy(dtype=bool))
    tally.judged += int((~missing).sum())
    tally.failing += int(positions.size)
    if positions.size:
        tally.rows.append(positions.astype(np.int64) + offset)
        if check.dimension in quarantine:
            tally.keys |= _key_tuples(batch_keys(), positions.tolist())
        notice.add(batch_keys(), positions.tolist(), offset, check)
    if firsts:
        tally.failing += len(firsts)
        tally.rows.append(np.asarray([row for row, _pos in firsts], dtype=np.int64))
        notice.add_rows(batch_keys(), firsts, check)

