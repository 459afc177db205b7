from __future__ import annotations

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
    staging.clear()
    assert [p for p in (tmp_path / "run").rglob("*") if p.is_file()] == []


def test_a_bad_staging_key_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="Fernet"):
        Staging(tmp_path, "not-a-key")


def test_reading_a_stage_that_has_not_run_is_a_state_error(tmp_path):
    from transfers.errors import StateError

    staging = Staging(tmp_path / "run", new_staging_key())
    with pytest.raises(StateError, match="stage 'prepared' has not run") as caught:
        staging.columns("prepared")
    assert not caught.value.retriable and caught.value.exit_code == 1
