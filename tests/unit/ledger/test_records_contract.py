"""The ledger's record contract holds: outside ``transfers/ledger/`` no module builds or reads a payload by string.

Writers call ``ledger.record(SomeRecord(...))`` and readers ``ledger.records(SomeRecord, ...)``
(``transfers.ledger.records``), so a payload key or kind lives in one place. This
walks the source and fails on a module that reads ``.payload``, appends with a
kind, payload or dedupe key of its own, or filters or compares kinds by string.
"""

from __future__ import annotations

import ast
from pathlib import Path

import transfers
from transfers.ledger.records import KINDS

ROOT = Path(transfers.__file__).parent.parent
LEDGER = ROOT / "transfers" / "ledger"
#: Ledger kinds, and ones guessed at but never written.
LEDGER_KINDS = {*KINDS, "no-consent", "statutory-share"}


def _violations(source: str, name: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and node.attr == "payload":
            found.append(f"{where}: reads .payload (use the record's fields)")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            keywords = {k.arg for k in node.keywords}
            # Ledger.append's keywords; list.append takes none.
            if node.func.attr == "append" and keywords & {"agreement", "payload", "dedupe_key"}:
                found.append(f"{where}: ledger.append(...) with a kind and payload of its own (use ledger.record)")
            elif node.func.attr in ("entries", "latest") and any(
                    k.arg == "kind" and isinstance(k.value, ast.Constant) for k in node.keywords):
                found.append(f"{where}: entries read by a kind string (use ledger.records(SomeRecord))")
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "kind" \
                and any(isinstance(c, ast.Constant) and c.value in LEDGER_KINDS for c in node.comparators):
            found.append(f"{where}: compares .kind with a string (use isinstance on records)")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def _modules() -> list[Path]:
    return sorted(p for folder in ("transfers", "dags") for p in (ROOT / folder).rglob("*.py")
                  if not p.is_relative_to(LEDGER))


def test_no_module_outside_the_ledger_builds_or_reads_a_payload_by_string():
    offenders = [v for path in _modules()
                 for v in _violations(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert offenders == []


def test_the_check_catches_what_it_forbids():
    source = ('ledger.append("purge", agreement="a", payload={})\n'
              'x = entry.payload["files"]\n'
              'ledger.entries(kind="disclosure")\n'
              'ok = entry.kind == "purge"\n'
              'parts.append("not a ledger")\n'
              'ledger.record(Purged(agreement="a", key="k", place="runs", path="p"))\n')
    assert [line.split(": ", 1)[0] for line in _violations(source, "m.py")] == ["m.py:1", "m.py:2", "m.py:3", "m.py:4"]

