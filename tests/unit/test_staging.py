from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from transfers.errors import ConfigError
from transfers.staging import Staging, new_staging_key


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"R{i:06d}" for i in range(start, start + n)],
                         "nhs_number": ["9434765919"] * n, "note": [None] * n}, dtype=object)


def test_batches_round_trip_and_are_never_plaintext_on_disk(tmp_path):
    staging = Staging(tmp_path / "run", new_staging_key())
    counts = staging.write_batches("extract", [frame(3), frame(2, 3)])

    assert counts == {"rows": 5, "parts": 2, "columns": ["id", "nhs_number", "note"]}
    back = pd.concat(list(staging.read_batches("extract")), ignore_index=True)
    assert back["id"].tolist() == [f"R{i:06d}" for i in range(5)]
    assert back["note"].isna().all()
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"9434765919" not in path.read_bytes()


def test_an_empty_extract_keeps_its_columns(tmp_path):
    staging = Staging(tmp_path / "run", new_staging_key())
    staging.write_batches("extract", [frame(0)])
    batches = list(staging.read_batches("extract"))
    assert staging.rows("extract") == 0
    assert list(batches[0].columns) == ["id", "nhs_number", "note"]


def test_a_different_key_cannot_read_and_says_so(tmp_path):
    Staging(tmp_path / "run", new_staging_key()).write_batches("extract", [frame(2)])
    with pytest.raises(ConfigError, match="staging key"):
        list(Staging(tmp_path / "run", new_staging_key()).read_batches("extract"))


def test_clear_removes_working_files(tmp_path):
    staging = Staging(tmp_path / "run", new_staging_key())
    staging.write_batches("extract", [frame(2)])
    staging.write_json("quarantine", [["R000001"]])
    spilled = staging.run_dir / "keys-abc123"  # a key index's runs, left by a quality step killed outright
    spilled.mkdir(mode=0o700)
    (spilled / "run-0.bin").write_bytes(b"\0" * 16)
    staging.clear()
    assert [p for p in (tmp_path / "run").rglob("*") if p.is_file()] == []
    assert not spilled.exists()


def test_a_bad_staging_key_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="Fernet"):
        Staging(tmp_path, "not-a-key")


def test_reading_a_stage_that_has_not_run_is_a_state_error(tmp_path):
    from transfers.errors import StateError

    staging = Staging(tmp_path / "run", new_staging_key())
    with pytest.raises(StateError, match="stage 'prepared' has not run") as caught:
        staging.columns("prepared")
    assert not caught.value.retriable and caught.value.exit_code == 1


# --------------------------------------------------------------------------- Arrow parts sealed with AES-256-GCM


def _parts(run) -> list:
    return sorted((run / "extract").glob("part-*"))


def test_batches_come_back_as_object_columns_of_str_or_none_and_as_arrow_tables(tmp_path):
    import pyarrow as pa

    staging = Staging(tmp_path / "run", new_staging_key())
    staging.write_batches("extract", [frame(2)])

    [batch] = list(staging.read_batches("extract"))
    assert all(dtype.kind == "O" for dtype in batch.dtypes)
    assert batch.to_dict("records")[0] == {"id": "R000000", "nhs_number": "9434765919", "note": None}
    [table] = list(staging.read_tables("extract"))
    assert table.schema == pa.schema([(c, pa.string()) for c in ("id", "nhs_number", "note")])
    assert table.column("id").to_pylist() == ["R000000", "R000001"]


def test_values_come_back_as_the_csv_staging_gave_them(tmp_path):
    # The stage used to be a CSV round trip: a number came back as its text, "" as missing. Nothing downstream may see a change.
    import pyarrow as pa

    staging = Staging(tmp_path / "run", new_staging_key())
    mixed = pd.DataFrame({"n": [12, 3], "x": [1.5, None], "s": ["", "a\nb, \"c\""], "b": [True, False]})
    staging.write_batches("extract", [mixed, pa.table({"n": ["", None], "x": ["0", "NA"], "s": ["x", "y"],
                                                       "b": ["t", "f"]})])

    first, second = list(staging.read_batches("extract"))
    assert first.to_dict("list") == {"n": ["12", "3"], "x": ["1.5", None], "s": [None, "a\nb, \"c\""],
                                     "b": ["True", "False"]}
    assert second.to_dict("list") == {"n": [None, None], "x": ["0", "NA"], "s": ["x", "y"], "b": ["t", "f"]}


def test_a_part_is_sealed_in_chunks_that_cannot_be_cut_reordered_or_swapped(tmp_path, monkeypatch):
    import transfers.stagingseal as staging_module

    monkeypatch.setattr(staging_module, "_CHUNK", 1024)  # several chunks per part, on a small frame
    run = tmp_path / "run"
    staging = Staging(run, new_staging_key())
    staging.write_batches("extract", [frame(300), frame(300, 300)])
    first, second = _parts(run)
    whole = first.read_bytes()
    head, chunk = staging_module._HEAD.size, staging_module._CHUNK_HEAD.size + 1024 + 16
    assert len(whole) > head + 3 * chunk
    chunks = [whole[head + i * chunk : head + (i + 1) * chunk] for i in range(3)]

    altered = {
        "a flipped byte": whole[:500] + bytes([whole[500] ^ 1]) + whole[501:],
        "cut at a chunk boundary": whole[: head + 2 * chunk],
        "final marker dropped": whole[: len(whole) - (staging_module._CHUNK_HEAD.size + 16 + 16)],
        "two chunks swapped": whole[:head] + chunks[1] + chunks[0] + whole[head + 2 * chunk :],
        "a chunk dropped": whole[:head] + chunks[1] + whole[head + 2 * chunk :],
        "bytes appended": whole + b"\x00",
        "the other part's bytes": second.read_bytes(),
    }
    for what, data in altered.items():
        first.write_bytes(data)
        with pytest.raises(ConfigError, match="part-00000.arrow.gcm: cannot be decrypted") as caught:
            list(staging.read_batches("extract"))
        assert "9434765919" not in str(caught.value), what
    first.write_bytes(whole)
    assert sum(len(b) for b in staging.read_batches("extract")) == 600


def test_a_part_moved_to_the_other_stage_does_not_open(tmp_path):
    run = tmp_path / "run"
    staging = Staging(run, new_staging_key())
    staging.write_batches("extract", [frame(3)])
    staging.write_batches("prepared", [frame(1)])
    (run / "extract" / "part-00000.arrow.gcm").replace(run / "prepared" / "part-00000.arrow.gcm")

    with pytest.raises(ConfigError, match=r"prepared/part-00000\.arrow\.gcm: cannot be decrypted"):
        list(staging.read_batches("prepared"))


def test_a_stage_written_before_the_upgrade_asks_for_a_re_run(tmp_path):
    from cryptography.fernet import Fernet

    from transfers.errors import StateError

    key = new_staging_key()
    staging = Staging(tmp_path / "2026-11-23", key)
    staging.write_batches("extract", [frame(0)])  # columns.json as both versions write it
    (tmp_path / "2026-11-23" / "extract" / "part-00000.csv.fernet").write_bytes(Fernet(key).encrypt(b"id\nR1\n"))

    with pytest.raises(StateError, match=r"part-00000\.csv\.fernet: stage 'extract' was written by an earlier "
                                         r"version .*run the flow again for this date \(2026-11-23\)"):
        list(staging.read_batches("extract"))
    staging.write_batches("extract", [frame(1)])  # a re-run replaces the old parts
    assert [len(b) for b in staging.read_batches("extract")] == [1]


def test_the_aes_key_comes_from_the_staging_key_so_the_same_key_reads_in_another_process(tmp_path):
    key = new_staging_key()
    Staging(tmp_path / "run", key).write_batches("extract", [frame(2)])
    assert len(next(Staging(tmp_path / "run", key.encode()).read_batches("extract"))) == 2


# --------------------------------------------------------------------------- the part-row index (columns.json)


def _sizes_staging(tmp_path, sizes: list[int]) -> Staging:
    staging = Staging(tmp_path / "run", new_staging_key())
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    staging.write_batches("prepared", [frame(n, s) for n, s in zip(sizes, starts, strict=True)])
    return staging


def _opened(monkeypatch, staging: Staging) -> list[str]:
    """The staging part files ``staging`` opens from now on, by name, as it opens them."""
    opened: list[str] = []
    real = Staging._read_part

    def spy(self, path):
        opened.append(path.name)
        return real(self, path)

    monkeypatch.setattr(Staging, "_read_part", spy)
    return opened


def test_columns_json_records_each_parts_row_count(tmp_path):
    import json

    staging = _sizes_staging(tmp_path, [8, 0, 5, 8])

    assert json.loads((staging.run_dir / "prepared" / "columns.json").read_text())["part_rows"] == [8, 0, 5, 8]
    assert staging.part_rows("prepared") == [8, 0, 5, 8]


@pytest.mark.parametrize(("row", "first", "opened"), [
    (0, 0, ["part-00000.arrow.gcm", "part-00001.arrow.gcm", "part-00002.arrow.gcm", "part-00003.arrow.gcm"]),
    (7, 0, ["part-00000.arrow.gcm", "part-00001.arrow.gcm", "part-00002.arrow.gcm", "part-00003.arrow.gcm"]),
    (8, 8, ["part-00002.arrow.gcm", "part-00003.arrow.gcm"]),  # the empty part 1 holds no row: skipped too
    (12, 8, ["part-00002.arrow.gcm", "part-00003.arrow.gcm"]),
    (13, 13, ["part-00003.arrow.gcm"]),
    (20, 13, ["part-00003.arrow.gcm"]),
])
def test_a_reader_starts_at_the_staging_part_holding_its_first_row(tmp_path, monkeypatch, row, first, opened):
    staging = _sizes_staging(tmp_path, [8, 0, 5, 8])
    seen = _opened(monkeypatch, staging)

    position, tables = staging.tables_from("prepared", row)
    ids = [i for table in tables for i in table.column("id").to_pylist()]

    assert position == first
    assert seen == opened
    assert ids == [f"R{i:06d}" for i in range(first, 21)]


def test_a_stage_whose_columns_json_has_no_part_rows_is_read_from_its_first_part(tmp_path, monkeypatch):
    import json

    staging = _sizes_staging(tmp_path, [8, 5, 8])
    path = staging.run_dir / "prepared" / "columns.json"
    old = json.loads(path.read_text())
    del old["part_rows"]  # as a run written before the index was kept
    path.write_text(json.dumps(old))
    seen = _opened(monkeypatch, staging)

    position, tables = staging.tables_from("prepared", 15)

    assert staging.part_rows("prepared") is None
    assert position == 0
    assert sum(t.num_rows for t in tables) == 21
    assert len(seen) == 3


class FolderStore:
    """A ``PartStore`` over another run folder (standing in for the work store: the unit needs no S3)."""

    def __init__(self, kept: Path, here: Path) -> None:
        self.kept, self.here = kept, here
        self.fetched: list[str] = []
        self.replaced: list[str] = []

    def fetch(self, path: Path) -> None:
        import shutil

        from transfers.errors import StateError

        source = self.kept / path.relative_to(self.here)
        if not source.exists():
            raise StateError(f"{source}: not stored")
        shutil.copyfile(source, path)
        self.fetched.append(path.name)

    def stored(self, folder: Path) -> list[str]:
        kept = self.kept / folder.relative_to(self.here)
        return sorted(p.name for p in kept.glob("part-*.arrow.gcm") if not (folder / p.name).exists())

    def replace(self, folder: Path) -> None:
        self.replaced.append(folder.name)


def stored_run(tmp_path: Path, parts: list[int], extra: int = 0) -> tuple[Staging, FolderStore]:
    """A stage written in ``kept/``, with ``extra`` stale parts beside it; a staging in ``here/`` with only its
    columns.json, reading the parts through a ``FolderStore``."""
    import shutil

    key = new_staging_key()
    kept = Staging(tmp_path / "kept", key)
    kept.write_batches("extract", [frame(n, sum(parts[:i])) for i, n in enumerate(parts)])
    for index in range(len(parts), len(parts) + extra):  # an earlier attempt's, not named by columns.json
        shutil.copyfile(tmp_path / "kept" / "extract" / "part-00000.arrow.gcm",
                        tmp_path / "kept" / "extract" / f"part-{index:05d}.arrow.gcm")
    (tmp_path / "here" / "extract").mkdir(parents=True)
    shutil.copyfile(tmp_path / "kept" / "extract" / "columns.json", tmp_path / "here" / "extract" / "columns.json")
    store = FolderStore(tmp_path / "kept", tmp_path / "here")
    return Staging(tmp_path / "here", key, store), store


def test_with_a_part_store_a_reader_fetches_only_the_parts_it_opens(tmp_path):
    staging, store = stored_run(tmp_path, [3, 3, 3, 3])

    first, tables = staging.tables_from("extract", 7)
    assert first == 6 and next(tables).num_rows == 3
    assert store.fetched == ["part-00002.arrow.gcm"]  # the part holding row 7, no other


def test_with_a_part_store_parts_are_named_from_columns_json_not_from_what_is_stored(tmp_path):
    staging, store = stored_run(tmp_path, [3, 2], extra=2)

    back = pd.concat(list(staging.read_batches("extract")), ignore_index=True)
    assert back["id"].tolist() == [f"R{i:06d}" for i in range(5)]  # the stale parts 2 and 3 are never read
    assert store.fetched == ["part-00000.arrow.gcm", "part-00001.arrow.gcm"]


def test_with_a_part_store_rewriting_a_stage_replaces_its_stored_parts(tmp_path):
    staging, store = stored_run(tmp_path, [3, 3])

    staging.write_batches("extract", [frame(4)])

    assert store.replaced == ["extract"]
    assert staging.part_rows("extract") == [4]
    assert [len(b) for b in staging.read_batches("extract")] == [4] and store.fetched == []  # its own, written here
