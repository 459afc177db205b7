"""The marker of a run in progress: set once, keeps its first start, cleared harmlessly twice."""

from __future__ import annotations

from datetime import date

from tests.support.retention_places import DS
from transfers.retention.running import clear_running, mark_running


def test_mark_running_is_idempotent_and_keeps_the_first_start(tmp_path):
    first = mark_running(tmp_path, "a", "A", DS).read_text()
    assert mark_running(tmp_path, "a", "A", DS).read_text() == first
    clear_running(tmp_path, "a", "A", DS)
    clear_running(tmp_path, "a", "A", DS)  # clearing twice is harmless
    assert not (tmp_path / "running" / "a" / "A" / f"{DS}.json").exists()
    assert date.fromisoformat(DS)
