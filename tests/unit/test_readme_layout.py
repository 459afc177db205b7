"""The README's layout section names every part of the tree, so a new module cannot go undocumented.

Checked: every top-level module and package of ``transfers/``, its ``transfers/<package>/`` folders, and the
repository's top-level folders a user meets. A name counts when the layout block mentions it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER_FOLDERS = ("config", "keys", "expectations", "dags", "transfers", "transfers_airflow", "tools", "tests",
                "bench", "scripts")


def _layout_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Layout\n\n```\n(.*?)```", text, flags=re.S | re.M)
    assert match, "README.md has no '## Layout' section with a code block"
    return match.group(1)


def _parts() -> list[str]:
    package = ROOT / "transfers"
    modules = [p.name for p in package.glob("*.py") if p.stem not in ("__init__", "__main__")]
    packages = [f"{p.name}/" for p in package.iterdir() if (p / "__init__.py").is_file()]
    return sorted(modules + packages)


def test_every_module_and_package_of_transfers_is_in_the_layout():
    block = _layout_block()
    missing = [name for name in _parts() if not re.search(rf"(?<![\w/]){re.escape(name)}", block)]
    assert missing == [], f"README layout does not mention: {missing}"


def test_every_top_level_folder_a_user_meets_is_in_the_layout():
    block = _layout_block()
    missing = [f for f in USER_FOLDERS if (ROOT / f).is_dir() and f"{f}/" not in block]
    assert missing == []


def test_the_layout_names_nothing_that_is_gone():
    # transfers/<x>.py or transfers/<x>/ written out in full must exist.
    named = re.findall(r"\btransfers/([\w]+(?:\.py|/))", _layout_block())
    gone = [n for n in named if not (ROOT / "transfers" / n.rstrip("/")).exists()]
    assert gone == []
