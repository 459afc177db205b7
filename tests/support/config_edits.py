"""A writable copy of the real ``config/`` and edits to its sample agreement, for tests of how a broken
agreement is refused.

Shared by ``tests/unit/agreement/`` and ``tests/unit/retention/`` (both break the sample's retention block),
so it lives here rather than in one test file (a test file is never imported by another). Broken configs are
made per test by editing the copy as data; no broken fixture files are committed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from transfers.agreement import load_config
from transfers.errors import ConfigError
from transfers.settings import PROJECT_ROOT

SAMPLE = "mash-referrals.yaml"


def copy_config(tmp_path: Path) -> Path:
    """The project's ``config/`` copied under ``tmp_path``, so a test may break it."""
    target = tmp_path / "config"
    shutil.copytree(PROJECT_ROOT / "config", target)
    return target


def edit(config_dir: Path, change: Callable[[dict[str, Any]], None], name: str = SAMPLE) -> Path:
    """Apply ``change`` to an agreement's YAML as data and write it back."""
    path = config_dir / "agreements" / name
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def problems(config_dir: Path, today: date | None = None) -> str:
    """The message of the ``ConfigError`` loading ``config_dir`` must raise."""
    with pytest.raises(ConfigError) as caught:
        load_config(config_dir, today=today)
    return str(caught.value)
