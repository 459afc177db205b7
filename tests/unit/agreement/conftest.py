"""The agreement tests' fixture: a writable copy of the real ``config/`` per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.config_edits import copy_config


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return copy_config(tmp_path)
