"""A delivery's parts, built from the prepared staging and encrypted in worker processes, both cores at once.

``plan_parts`` names the parts from the row count alone (``delivery_max_rows`` rows each, the last
shorter), so nothing is read to name them. ``encrypt_all`` splits the parts into one contiguous run per
worker (``workers``) and each worker reads the staging itself, skipping the rows before its first part,
builds each of its parts' CSV in turn and encrypts it to the outbox (``write_atomic``). This process runs the
last run of parts itself (it has the libraries loaded already), so at most one part per worker, this process
included, is in memory, and the parent holds no other part's plaintext. Contiguous runs rather than one task per
part: a worker can only reach a part by reading the batches before it, so a run of parts costs one skip,
not one per part.

What a worker needs travels in a ``Job`` through the pool's pipe: the staging key and our armoured
signing key are secrets, so they are never written to disk, argv or the environment. Each worker loads
and checks both keys again from that text. Workers are started with ``spawn``: a forked copy of an
Airflow task process (threads, open connections) is not safe to run on. The price: a spawned worker imports
pgpy and pandas (about 2 s of CPU) and, by Python's rule for spawn, the parent's main module again (under
Airflow, Airflow's entry module), which is why ``encrypt_all`` keeps one run of parts in this process.

A worker's error stops the step with that error, the others stop before their next part, and every part
of this attempt is removed, so the outbox holds no part without its manifest. One log line per part
(name, rows, size), written by the parent so it reaches the run's log too.
"""

from __future__ import annotations

import io
import os
import queue as queue_module
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    import multiprocessing.queues
    import multiprocessing.synchronize

    import pandas as pd

    from transfers.crypto import Compression
    from transfers.staging import Staging

__all__ = ["EncryptedPart", "Job", "Part", "encrypt_all", "plan_parts", "worker_count"]


class EncryptedPart(TypedDict):
    """A part as the manifest lists it (this key order)."""

    name: str
    size: int
    sha256: str
    rows: int


@dataclass(frozen=True)
class Part:
    """One delivered file: its name and which prepared rows it holds (``start`` counts from 0)."""

    name: str
    start: int
    rows: int


def plan_parts(rows: int, limit: int, base_name: str) -> list[Part]:
    """The parts of a delivery of ``rows`` rows, ``limit`` rows a part; one (empty) part when there are none."""
    total = max(1, -(-rows // limit))
    if total == 1:
        return [Part(f"{base_name}.csv.pgp", 0, rows)]
    return [Part(f"{base_name}_part{i:03d}of{total:03d}.csv.pgp", (i - 1) * limit, min(limit, rows - (i - 1) * limit))
            for i in range(1, total + 1)]


def worker_count(setting: int | str, parts: int) -> int:
    """Processes to encrypt ``parts`` with: ``setting`` (``"auto"``: one per CPU), never more than the parts."""
    wanted = (os.cpu_count() or 1) if setting == "auto" else int(setting)
    return max(1, min(wanted, parts))


@dataclass(frozen=True)
class Job:
    """Everything one worker needs to encrypt a contiguous run of parts; plain values, so it pickles."""

    run_dir: Path
    staging_key: str | bytes = field(repr=False)
    columns: list[str]
    formula_escape: bool
    parts: tuple[Part, ...]
    outbox: Path
    recipient_key_file: Path  # named in messages; the key itself is ``recipient_armored``
    recipient_fingerprint: str
    recipient_armored: str = field(repr=False)
    signer_fingerprint: str
    signer_armored: str = field(repr=False)
    signer_passphrase: str | None = field(repr=False)
    compression: Compression
    level: int


def encrypt_all(jobs: list[Job], report: Callable[[EncryptedPart], None]) -> list[EncryptedPart]:
    """Encrypt every job's parts at once: the last job in this process, each other one in a worker process.

    Returns the parts in the jobs' order; ``report`` is called as each part is written.

    Raises:
        TransferError: What a worker raised (the first, if several failed); no part of any job is left.
    """
    try:
        if len(jobs) == 1:
            return encrypt_job(jobs[0], report, lambda: False)
        return _in_pool(jobs, report)
    except BaseException:
        for job in jobs:  # a part without its manifest is never sent; removed, a retry starts clean
            for part in job.parts:
                (job.outbox / part.name).unlink(missing_ok=True)
        raise


def encrypt_job(job: Job, report: Callable[[EncryptedPart], None], stop: Callable[[], bool],
                staging: Staging | None = None) -> list[EncryptedPart]:
    """Build and encrypt ``job``'s parts one after another; return before a part once ``stop()`` says so.

    ``staging``: the run's own (a task's, fetching staging parts from the work store as they are opened);
    default, the job's run folder as it is on this disk (a worker process).
    """
    from transfers.crypto import encrypt_to_file, load_own_signing_key, load_recipient_key
    from transfers.staging import Staging

    key = load_recipient_key(job.recipient_key_file, job.recipient_fingerprint, armored=job.recipient_armored)
    signer = load_own_signing_key(job.signer_armored, job.signer_fingerprint, passphrase=job.signer_passphrase)
    staging = staging or Staging(job.run_dir, job.staging_key)
    done: list[EncryptedPart] = []
    for part, plaintext in _plaintexts(staging, job):
        if stop():
            break
        encrypted = encrypt_to_file(plaintext, key, job.outbox / part.name, filename=part.name.removesuffix(".pgp"),
                                    signer=signer, compression=job.compression, level=job.level)
        del plaintext
        made = EncryptedPart(name=part.name, size=encrypted.size, sha256=encrypted.sha256, rows=part.rows)
        done.append(made)
        report(made)
    return done


def _plaintexts(staging: Any, job: Job) -> Iterator[tuple[Part, bytes]]:
    """Each of ``job``'s parts as CSV bytes, built from the prepared batches in order; one part at a time.

    Raises:
        StateError: The stage holds other than the rows its count says (the parts were named from it).
    """
    from transfers.errors import StateError

    start = job.parts[0].start if job.parts else 0
    # From the staging part holding the first row (its row counts are in columns.json), not the stage's start.
    position, tables = staging.tables_from("prepared", start)
    for part, frame in _part_frames(_frames_from(tables, start, position), job.parts, job.columns, position):
        if len(frame) != part.rows:
            raise StateError(f"{job.run_dir}: stage 'prepared' ends before row {part.start + part.rows:,} that its "
                             f"row count promises ({part.name}); run the prepare step again")
        if job.formula_escape:
            from transfers.csv_escape import escape_frame

            frame = escape_frame(frame)
        out = io.StringIO()
        frame.to_csv(out, index=False, columns=job.columns)
        del frame
        yield part, out.getvalue().encode("utf-8")


def _frames_from(tables: Iterator[Any], start: int, position: int = 0) -> Iterator[pd.DataFrame]:
    """The stage's Arrow tables (the first of which starts at row ``position``) as frames; one wholly before row
    ``start`` only as its length (no columns).

    A job's parts are a later run of the stage's rows: turning the rows before them into pandas
    objects, only to skip them, cost the last job about two seconds per million rows.
    """
    import pandas as pd

    from transfers.staging import as_frame

    for table in tables:
        rows = table.num_rows
        yield pd.DataFrame(index=pd.RangeIndex(rows)) if rows and position + rows <= start else as_frame(table)
        position += rows


def _part_frames(batches: Iterator[pd.DataFrame], parts: tuple[Part, ...], columns: list[str],
                 position: int = 0) -> Iterator[tuple[Part, pd.DataFrame]]:
    """Cut ``parts`` (contiguous, in order) out of the batches, the first of which starts at row ``position``;
    rows before the first part are skipped."""
    import pandas as pd

    pending = list(parts)
    buffer: list[pd.DataFrame] = []
    taken = 0  # rows of pending[0] in buffer
    # ``position``: rows of the stage before this batch
    for batch in batches:
        after = position + len(batch)
        while pending:
            part = pending[0]
            first, end = part.start + taken, part.start + part.rows
            if first >= after:
                break  # this part starts in a later batch
            take = batch.iloc[first - position: min(end, after) - position]
            buffer.append(take)
            taken += len(take)
            if taken < part.rows:
                break  # the rest of this part is in the next batch
            yield part, pd.concat(buffer) if len(buffer) > 1 else buffer[0]
            pending.pop(0)
            buffer, taken = [], 0
        position = after
        if not pending:
            return  # the batches after our parts are another worker's
    for part in pending:  # an empty delivery; or a stage shorter than its count, which the caller refuses
        yield part, pd.concat(buffer) if buffer else pd.DataFrame(columns=columns)
        buffer = []


# --------------------------------------------------------------------------- the pool

_progress: multiprocessing.queues.Queue[EncryptedPart] | None = None
_stopping: multiprocessing.synchronize.Event | None = None


def _worker_init(progress: multiprocessing.queues.Queue[EncryptedPart],
                 stopping: multiprocessing.synchronize.Event) -> None:
    global _progress, _stopping
    _progress, _stopping = progress, stopping


def _worker(job: Job) -> list[EncryptedPart]:
    assert _progress is not None and _stopping is not None  # set by _worker_init in every worker
    progress, stopping = _progress, _stopping
    return encrypt_job(job, progress.put, stopping.is_set)


def _in_pool(jobs: list[Job], report: Callable[[EncryptedPart], None]) -> list[EncryptedPart]:
    """The last job in this process, the others in spawned workers at the same time.

    This process has pgpy and pandas loaded already, while a spawned worker spends about
    2 s of CPU importing them; and the last job is the one that reads furthest past rows
    that are not its own. So this process takes the last job and one worker fewer starts.
    """
    context = get_context("spawn")
    reported: set[str] = set()

    def once(part: EncryptedPart) -> None:
        reported.add(part["name"])
        report(part)

    progress: multiprocessing.queues.Queue[EncryptedPart] = context.Queue()
    stopping = context.Event()
    own: list[EncryptedPart] = []
    own_error: BaseException | None = None
    with ProcessPoolExecutor(max_workers=len(jobs) - 1, mp_context=context, initializer=_worker_init,
                             initargs=(progress, stopping)) as pool:
        futures = [pool.submit(_worker, job) for job in jobs[:-1]]

        def failed() -> bool:
            _drain(progress, once)
            return any(f.done() and f.exception() is not None for f in futures)

        try:
            own = encrypt_job(jobs[-1], once, failed)
            pending: set[Future[list[EncryptedPart]]] = set(futures)
            while pending and not failed():
                _finished, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
        except Exception as exc:  # this process's own job failed: the workers' errors, if any, come first
            own_error = exc
        finally:
            # A failed job, or this process stopped (Airflow's SIGTERM): the others stop before their next
            # part rather than finishing their run, and leaving the pool waits for them.
            stopping.set()
    _drain(progress, once)
    for future in futures:
        if (error := future.exception()) is not None:
            raise error
    if own_error is not None:
        raise own_error
    parts = [part for future in futures for part in future.result()] + own
    for part in parts:  # a line still in the queue's pipe when its worker ended is not lost
        if part["name"] not in reported:
            once(part)
    return parts


def _drain(progress: multiprocessing.queues.Queue[EncryptedPart], report: Callable[[EncryptedPart], None]) -> None:
    while True:
        try:
            report(progress.get_nowait())
        except queue_module.Empty:
            return
