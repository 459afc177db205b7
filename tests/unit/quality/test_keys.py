"""The compact key index: duplicates found within and across batches, and a hash collision never taken
for a duplicate."""

from __future__ import annotations

import gc

import numpy as np
import pytest

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


# --------------------------------------------------------------------------- spilled to disk


def reference(batches: list[tuple[list[str | None], int]]) -> list[tuple[list[bool], list[tuple[int, int]]]]:
    """What ``see`` must answer for each batch, worked out with a plain dict of every key."""
    seen: dict[str, list] = {}  # key -> [extract row of its first copy, named yet]
    answers = []
    for values, offset in batches:
        first, firsts = [], []
        here: dict[str, int] = {}
        for pos, value in enumerate(values):
            if value is None:
                first.append(False)
            elif value in seen:
                first.append(False)
                if not seen[value][1]:
                    firsts.append((seen[value][0], pos))
                    seen[value][1] = True
            elif value in here:
                first.append(False)
                if here[value] >= 0:
                    firsts.append((offset + here[value], pos))
                    here[value] = -1
            else:
                first.append(True)
                here[value] = pos
        for value, pos in here.items():
            seen[value] = [offset + pos if pos >= 0 else 0, pos < 0]
        answers.append((first, firsts))
    return answers


def random_batches(seed: int) -> list[tuple[list[str | None], int]]:
    """Batches of 0-40 keys from a small pool: duplicates within and across batches, some incomplete."""
    rng = np.random.default_rng(seed)
    batches, offset = [], 0
    for _ in range(25):
        n = int(rng.integers(0, 41))
        values = [None if rng.random() < 0.1 else f"K{int(k)}" for k in rng.integers(0, 300, n)]
        batches.append((values, offset))
        offset += n
    return batches


def few_hashes(columns, hash_key):  # noqa: ANN001, ANN201 - the seam's signature
    """Only four hash values: most keys collide with many others, across batches, runs and chunks."""
    return key_hash(columns, hash_key) % np.uint64(4)


def answers(index: KeyIndex, batches: list[tuple[list[str | None], int]]) -> list:
    return [see(index, offset, *values) for values, offset in batches]


@pytest.mark.parametrize("digest", [key_hash, few_hashes, collide], ids=["real", "four-hashes", "one-hash"])
@pytest.mark.parametrize("seed", range(4))
def test_a_spilled_index_answers_exactly_as_one_held_in_memory(digest, seed, tmp_path):
    batches = random_batches(seed)
    with KeyIndex(digest, capacity=10**9) as whole, KeyIndex(digest, capacity=7, chunk=3, directory=tmp_path) as small:
        expected = answers(whole, batches)
        got = answers(small, batches)
        assert whole.spilled == 0 and small.spilled > 5  # several runs, each read in several chunks
        assert len(small) == len(whole)
    assert got == expected == reference(batches)


def test_memory_held_stays_under_the_cap_however_many_keys(tmp_path):
    with KeyIndex(capacity=1000, directory=tmp_path) as index:
        for start in range(0, 21_000, 1500):  # batches larger than the cap go straight to disk
            values = np.array([f"K{i:07d}" for i in range(start, start + 1500)], dtype=object)
            first, _ = index.see([values], np.ones(len(values), dtype=bool), start)
            assert first.all()
            assert index.nbytes <= 16 * 1000
        first, firsts = index.see([np.array(["K0000003", "K0020999"], dtype=object)], np.ones(2, dtype=bool), 21_000)
        assert first.tolist() == [False, False] and firsts == [(3, 0), (20_999, 1)]
        assert len(index) == 21_000


def test_spilled_runs_sit_in_a_private_directory_deleted_on_close(tmp_path):
    index = KeyIndex(capacity=2, directory=tmp_path)
    assert see(index, 0, "a", "b", "c", "d") == ([True] * 4, [])
    place = index.directory
    assert place is not None and place.parent == tmp_path
    assert place.stat().st_mode & 0o777 == 0o700
    assert [p.stat().st_mode & 0o777 for p in place.iterdir()] == [0o600]
    index.close()
    assert list(tmp_path.iterdir()) == []
    index.close()  # twice is harmless


def test_spilled_runs_are_deleted_when_the_index_is_left_by_an_error_or_dropped(tmp_path):
    with pytest.raises(RuntimeError), KeyIndex(capacity=1, directory=tmp_path) as index:
        see(index, 0, "a", "b")
        assert any(tmp_path.iterdir())
        raise RuntimeError("a batch failed")
    assert list(tmp_path.iterdir()) == []
    dropped = KeyIndex(capacity=1, directory=tmp_path)
    see(dropped, 0, "a", "b")
    assert any(tmp_path.iterdir())
    del dropped
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_nothing_is_written_while_the_keys_fit_in_memory(tmp_path):
    with KeyIndex(capacity=10, directory=tmp_path) as index:
        see(index, 0, *"abcdefghij")
        assert index.spilled == 0 and index.directory is None and list(tmp_path.iterdir()) == []


def test_spilled_hashes_are_keyed_per_index_so_they_mean_nothing_after_the_run(tmp_path):
    values = [f"K{i}" for i in range(50)]
    on_disk = []
    for _ in range(2):
        index = KeyIndex(capacity=10, directory=tmp_path)
        see(index, 0, *values)
        run = next(index.directory.iterdir())  # the first 10 keys' hashes are written alike by either index
        on_disk.append(np.fromfile(run, dtype="<u8", count=50))
        index.close()
    assert not np.intersect1d(on_disk[0], on_disk[1]).size
    fixed = key_hash([column(*values)], "isp-transfers-k1")  # the fixed key the index used before
    assert not np.intersect1d(on_disk[0], fixed).size
