"""check_quality: run the suite over every batch and decide each characteristic's outcome."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from transfers.agreement import DIMENSIONS, Flow
from transfers.quality.checks import Check, plan_checks
from transfers.quality.gxrun import _RESULT_FORMAT, _batch_definition, _raised, gx
from transfers.quality.judge import _Copies, _Tally, judge
from transfers.quality.keys import Digest, key_hash
from transfers.quality.outcome import QualityOutcome
from transfers.quality.prepare import _Preparer
from transfers.quality.rectify import Rectification
from transfers.quality.relevance import ColumnChecks
from transfers.quality.rules import _KEY_COLUMN
from transfers.quality.suite import flow_checks
from transfers.settings import HomeLayout

_KEY_CHECK = "reliability.record_key"
# Source batches are joined into chunks of up to this many rows before GX sees them: a GX
# validation has a large fixed cost (building its metric graph, copying its configuration),
# which 50,000-row batches paid 20 times a million rows. GX holds about 1 KB a row while it
# validates, so 200,000 rows was no faster but 110 MB bigger than this (bench_quality).
CHUNK_ROWS = 100_000


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
    expectations_dir: Path | None = None,
    dry_run: bool = False,
    digest: Digest = key_hash,
    work_dir: Path | None = None,
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
        expectations_dir: where hand-written suites are (``<dir>/<agreement>/<flow>.json``); None: none.
        dry_run: the reports say so, and what a real run *would* do (``transfers check``).
        digest: the 64-bit hash record keys are remembered by (a seam for tests; see ``keys``).
        work_dir: the run's working directory, where the record-key index spills what does not
            fit its fixed memory (in a private temporary directory, deleted before returning);
            None: the system's temporary directory.

    Returns:
        The outcome. It does not raise when a ``block`` characteristic fails:
        the caller raises ``QualityBlocked`` with ``outcome.blocked``.
    """
    checks = flow_checks(flow, agreement_id=agreement_id, logical_date=logical_date, expectations_dir=expectations_dir)
    suite = gx.ExpectationSuite(
        name=f"{agreement_id}.{flow.id}", expectations=[ch.expectation for ch in checks if ch.scope == "rows"]
    )
    columns = ColumnChecks(flow, checks)
    quarantine = {d for d in DIMENSIONS if flow.quality.policy(d) == "quarantine"}
    derived = {ch.id for ch in plan_checks(flow, logical_date=logical_date)}
    preparer = _Preparer(flow, checks, hand_written=any(ch.id not in derived for ch in checks), digest=digest,
                         work_dir=work_dir)
    tallies = {ch.id: _Tally() for ch in checks if ch.scope == "rows"}
    copies = _Copies()
    stem = HomeLayout.report_stem(flow.id, logical_date)  # the purge reads the run's date back from it
    notice = Rectification(Path(report_dir), stem, flow.key_fields) if report_dir is not None else None
    try:
        rows, n_batches = _validate_batches(
            batches, flow, checks, suite, preparer, tallies, quarantine, notice, columns, copies
        )
    except BaseException:
        if notice is not None:
            notice.abort()
        raise
    finally:
        preparer.close()
    rectification = notice.close() if notice is not None else None

    return judge(
        flow, checks, tallies, copies, columns, rows=rows, batches=n_batches, nulls=preparer.nulls,
        newest=preparer.newest, recent=bool(preparer.recent), rectification=rectification,
        records_to_fix=len(notice.records) if notice is not None else 0, agreement_id=agreement_id,
        logical_date=logical_date, report_dir=report_dir, history=history, dry_run=dry_run,
    )


def _validate_batches(
    batches: Iterable[pd.DataFrame],
    flow: Flow,
    checks: Sequence[Check],
    suite: Any,
    preparer: _Preparer,
    tallies: dict[str, _Tally],
    quarantine: set[str],
    notice: Rectification | None,
    columns: ColumnChecks,
    copies: _Copies,
    start: int = 0,
) -> tuple[int, int]:
    """Validate every batch with GX, summing counts into ``tallies``; returns (rows, batches).

    ``start``: the extract row the batches begin at (a mapped part's range); rows are counted from it,
    so the row returned is the range's end.
    """
    by_id = {ch.id: ch for ch in checks}
    rows = start
    counted = [0]
    for batch, starts in _chunks(batches, columns, counted):
        frame = preparer.prepare(batch)
        keys: pd.DataFrame | None = None

        def batch_keys(batch: pd.DataFrame = batch) -> pd.DataFrame:
            nonlocal keys
            keys = _key_frame(batch, flow.key_fields) if keys is None else keys
            return keys

        if notice is not None:
            notice.begin(starts)
        if len(frame):
            if _KEY_COLUMN in frame.columns:  # a mapped part leaves uniqueness to its seal (quality.mapped)
                copies.note(frame, batch_keys)
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
                        tally.keys |= _key_tuples(batch_keys(), positions)
                    if notice is not None:
                        notice.add(batch_keys(), positions, rows, check)
                if check.id == _KEY_CHECK and preparer.key_firsts:
                    # GX sees only the later copies (the first was new when read); both copies share the key.
                    firsts = preparer.key_firsts
                    tally.failing += len(firsts)
                    tally.rows.append(np.asarray([row for row, _pos in firsts], dtype=np.int64))
                    if notice is not None:
                        notice.add_rows(batch_keys(), firsts, check)
        if notice is not None:
            notice.flush()
        rows += len(frame)
    return rows, counted[0]


def _chunks(
    batches: Iterable[pd.DataFrame], columns: ColumnChecks, counted: list[int]
) -> Iterator[tuple[pd.DataFrame, list[int]]]:
    """Consecutive batches with the same columns, joined up to :data:`CHUNK_ROWS` rows.

    Yields (chunk, the chunk position where each source batch begins). Each
    source batch is still counted and its columns judged on their own
    (``counted[0]``, ``columns``); a batch with other columns than the one
    before, or with a column name twice, starts a new chunk.
    """
    pending: list[pd.DataFrame] = []
    names: list[str] | None = None
    size = 0
    for batch in batches:
        counted[0] += 1
        these = [str(c) for c in batch.columns]
        columns.see(these)
        joinable = len(set(these)) == len(these)
        if pending and (these != names or not joinable or size + len(batch) > CHUNK_ROWS):
            yield _joined(pending, names)
            pending, size = [], 0
        pending.append(batch)
        names, size = these, size + len(batch)
        if not joinable:
            yield _joined(pending, names)
            pending, size = [], 0
    if pending:
        yield _joined(pending, names)


def _joined(pending: list[pd.DataFrame], names: list[str] | None) -> tuple[pd.DataFrame, list[int]]:
    if len(pending) == 1:
        return pending[0], [0]
    starts = np.cumsum([0, *(len(b) for b in pending[:-1])]).tolist()
    same = [b if list(b.columns) == names else b.set_axis(names, axis=1) for b in pending]
    return pd.concat(same, ignore_index=True), starts

