"""The retention tests' fixtures: a writable copy of the real ``config/``, and a fresh home with its ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.config_edits import copy_config
from transfers.agreement import load_config
from transfers.settings import Settings


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return copy_config(tmp_path)


@pytest.fixture
def world(tmp_path, config_dir):
    """Settings on a fresh home, the sample config and an empty SQLite ledger."""
    settings = Settings(home=tmp_path / "home", config_dir=config_dir)
    config = load_config(config_dir)
    ledger = settings.open_ledger()
    yield settings, config, ledger
    ledger.close()
