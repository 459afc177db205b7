"""Cutting a delivery into parts (``transfers.steps.encrypt_parts``): names, rows and worker runs, with no ``gpg``.

Encryption itself, in worker processes, decrypted by the real ``gpg``, is in
``tests/integration/test_encrypt_parallel.py``.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

from transfers.steps.encrypt_parts import Part, _frames_from, _part_frames, plan_parts, worker_count

COLUMNS = ["referral_id", "risk_level"]


def _batches(sizes: list[int]) -> list[pd.DataFrame]:
    """Batches of the given sizes holding rows R0, R1, ... in order."""
    out, n = [], 0
    for size in sizes:
        out.append(pd.DataFrame({"referral_id": [f"R{n + i}" for i in range(size)], "risk_level": ["low"] * size},
                                dtype=object))
        n += size
    return out


def test_parts_are_named_from_the_row_count_with_the_last_one_shorter():
    assert plan_parts(40, 15, "b") == [Part("b_part001of003.csv.pgp", 0, 15), Part("b_part002of003.csv.pgp", 15, 15),
                                       Part("b_part003of003.csv.pgp", 30, 10)]


@pytest.mark.parametrize(("rows", "expected"), [(0, [Part("b.csv.pgp", 0, 0)]), (15, [Part("b.csv.pgp", 0, 15)])])
def test_one_part_takes_the_plain_name_even_when_empty(rows, expected):
    assert plan_parts(rows, 15, "b") == expected


@pytest.mark.parametrize(("setting", "parts", "expected"), [(1, 4, 1), (3, 2, 2), (8, 8, 8), ("auto", 1, 1)])
def test_never_more_workers_than_parts_nor_than_asked(setting, parts, expected):
    assert worker_count(setting, parts) == expected


def test_auto_takes_one_worker_per_cpu(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert worker_count("auto", 4) == 2


@pytest.mark.parametrize("sizes", [[40], [7, 7, 7, 7, 7, 5], [15, 15, 10], [1] * 40, [0, 23, 0, 17]])
def test_each_part_holds_exactly_its_rows_in_order_whatever_the_batches(sizes):
    parts = plan_parts(40, 15, "b")
    every = [(part, list(frame["referral_id"])) for part, frame in _part_frames(iter(_batches(sizes)), tuple(parts),
                                                                                 COLUMNS)]
    assert [p for p, _ in every] == parts
    assert [ids for _, ids in every] == [[f"R{i}" for i in range(p.start, p.start + p.rows)] for p in parts]


def test_a_later_run_of_parts_skips_the_rows_before_it_and_stops_reading_after_its_last():
    parts = plan_parts(40, 10, "b")
    read = []

    def batches():
        for batch in _batches([8, 8, 8, 8, 8]):
            read.append(batch["referral_id"].iloc[0])
            yield batch

    got = [(p.name, list(f["referral_id"])) for p, f in _part_frames(batches(), tuple(parts[1:3]), COLUMNS)]

    assert got == [(parts[1].name, [f"R{i}" for i in range(10, 20)]),
                   (parts[2].name, [f"R{i}" for i in range(20, 30)])]
    assert read == ["R0", "R8", "R16", "R24"]  # the batch of R32.. holds none of its rows: never read


def test_an_empty_stage_gives_one_empty_part_with_its_columns():
    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})
    ((part, frame),) = _part_frames(iter([empty]), tuple(plan_parts(0, 15, "b")), COLUMNS)
    assert part.rows == 0 and frame.empty and frame.to_csv(index=False, columns=COLUMNS) == "referral_id,risk_level\n"


@pytest.mark.parametrize("sizes", [[8, 8, 8, 8, 8], [12, 0, 3, 25], [40]])
def test_tables_before_a_jobs_first_part_are_not_converted_and_the_parts_are_the_same(sizes):
    parts = plan_parts(40, 10, "b")
    tables = [pa.Table.from_pandas(batch, preserve_index=False) for batch in _batches(sizes)]
    frames = list(_frames_from(iter(tables), parts[2].start))
    skipped = [f for f in frames if list(f.columns) == []]
    assert sum(len(f) for f in frames) == 40
    assert sum(len(f) for f in skipped) == sum(s for i, s in enumerate(sizes) if s and sum(sizes[:i + 1]) <= 20)
    got = [(p.name, list(f["referral_id"])) for p, f in _part_frames(iter(frames), tuple(parts[2:]), COLUMNS)]
    assert got == [(p.name, [f"R{i}" for i in range(p.start, p.start + p.rows)]) for p in parts[2:]]


def test_parts_are_cut_from_batches_that_start_mid_stage_at_the_given_row():
    # The reader opened the staging part holding row 16 (batches of 8: it starts at row 16), as a part task does.
    parts = plan_parts(40, 10, "b")
    later = _batches([8, 8, 8, 8, 8])[2:]
    tables = [pa.Table.from_pandas(batch, preserve_index=False) for batch in later]

    frames = _frames_from(iter(tables), parts[2].start, 16)
    got = [(p.name, list(f["referral_id"])) for p, f in _part_frames(frames, tuple(parts[2:]), COLUMNS, 16)]

    assert got == [(p.name, [f"R{i}" for i in range(p.start, p.start + p.rows)]) for p in parts[2:]]
