"""The rules package as a whole: one copy of each rule in ``transfers/``, and a leaf that imports nothing heavy."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "transfers"


def test_one_copy_of_each_rule_in_the_package():
    # Modulus 11 ("11 - ... % 11") and postcode patterns live only in transfers/rules/.
    modulus = re.compile(r"%\s*11\b")
    postcode = re.compile(r"GIR|\[0-9\]\[A-Z\]\{\{?2\}")
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "rules" and path.parent.parent == PACKAGE:
            continue
        text = path.read_text(encoding="utf-8")
        if modulus.search(text) or postcode.search(text):
            offenders.append(str(path.relative_to(PACKAGE)))
    assert offenders == []


def test_rules_import_nothing_heavy():
    import subprocess
    import sys

    code = "import sys, transfers.rules; print(sorted({'numpy', 'pandas'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
