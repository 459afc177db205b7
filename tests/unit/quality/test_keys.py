"""The compact key index: duplicates found within and across batches, and a hash collision never taken
for a duplicate."""

from __future__ import annotations

import numpy as np

from transfers.quality.keys import KeyIndex, key_hash


def column(*values: str | None) -> np.ndarray:
    return np.array(values, dtype=object)


def see(index: KeyIndex, offset: int, *values: str | None) -> tuple[list[bool], list[tuple[int, int]]]:
    complete = np.array([v is not None for v in values])
    first, firsts = index.see([column(*values)], complete, offset)
    return first.tolist(), firsts


def collide(columns, hash_key):  # noqa: ANN001, ANN201 - the seam's signature
    """Every key hashes the same: each later key is a candidate duplicate of every earlier one."""
    return np.zeros(len(columns[0]), dtype=np.uint64)


def test_a_duplicate_within_a_batch_names_its_first_copy_once():
    index = KeyIndex()
    first, firsts = see(index, 100, "a", "b", "a", "a", "c")
    assert first == [True, True, False, False, True]
    assert firsts == [(100, 2)]  # extract row of the first "a", batch position of the copy that repeats it


def test_a_duplicate_across_batches_is_found_and_its_first_copy_named_once():
    index = KeyIndex()
    assert see(index, 0, "a", "b", "c") == ([True, True, True], [])
    first, firsts = see(index, 3, "d", "b", "e", "b")
    assert first == [True, False, True, False]
    assert firsts == [(1, 1)]
    # a third copy, a batch later: a duplicate again, but its first copy was already named
    assert see(index, 7, "b", "f") == ([False, True], [])
    assert len(index) == 6


def test_incomplete_keys_are_neither_first_nor_remembered():
    index = KeyIndex()
    first, firsts = see(index, 0, None, "a", None)
    assert first == [False, True, False] and firsts == []
    assert len(index) == 1


def test_a_compound_key_is_one_key_of_all_its_parts():
    index = KeyIndex()
    parts = [column("R1", "R1", "R2", "R1"), column("low", "high", "low", "low")]
    first, firsts = index.see(parts, np.ones(4, dtype=bool), 0)
    assert first.tolist() == [True, True, True, False] and firsts == [(0, 3)]
    first, _ = index.see([column("R1", "R2"), column("high", "high")], np.ones(2, dtype=bool), 4)
    assert first.tolist() == [False, True]


def test_a_forced_hash_collision_within_a_batch_is_not_a_duplicate():
    index = KeyIndex(digest=collide)
    first, firsts = see(index, 0, "a", "b", "c", "a")
    assert first == [True, True, True, False] and firsts == [(0, 3)]  # values compared, not hashes


def test_a_forced_hash_collision_across_batches_is_not_a_duplicate():
    index = KeyIndex(digest=collide)
    see(index, 0, "a", "b")
    first, firsts = see(index, 2, "c", "b", "d")
    # every key hits on the forced hash; the confirming hash tells "c" and "d" from "a" and "b"
    assert first == [True, False, True]
    assert firsts == [(1, 1)]


def test_the_index_costs_sixteen_bytes_a_key_and_stays_sorted():
    index = KeyIndex()
    for start in range(0, 30_000, 10_000):
        values = np.array([f"K{i:07d}" for i in range(start, start + 10_000)], dtype=object)
        first, _ = index.see([values], np.ones(len(values), dtype=bool), start)
        assert first.all()
    assert len(index) == 30_000 and index.nbytes == 16 * 30_000
    assert np.all(np.diff(index._hashes.astype(np.float64)) >= 0)


def test_key_hash_reads_text_as_text():
    a = key_hash([column("x", "y")], "0123456789abcdef")
    assert a.dtype == np.uint64 and a[0] != a[1]
    assert key_hash([column("x")], "0123456789abcdef")[0] == a[0]
    assert key_hash([column("x")], "fedcba9876543210")[0] != a[0]  # the two hashes are independent
