"""Layering of ``transfers/``: steps never import the pipeline that composes them; leaf modules stay leaves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import transfers

ROOT = Path(transfers.__file__).parent


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every transfers module ``path`` imports, function-local imports included (they hide cycles)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transfers"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("transfers"))
    return found


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def test_only_the_command_line_imports_the_pipeline():
    # The pipeline composes the steps; a step importing it is an upward import (and made notices <-> pipeline).
    importers = sorted(
        name for name, path in MODULES.items()
        if name != "transfers.pipeline" and not name.startswith(("transfers.cli", "transfers.__main__"))
        and any(i == "transfers.pipeline" or i.startswith("transfers.pipeline.") for i in _imports(path))
    )
    assert importers == []


@pytest.mark.parametrize("leaf", ["transfers.files", "transfers.flowrun"])
def test_leaf_modules_import_nothing_above_them(leaf):
    allowed = {"transfers.files": set(),
               "transfers.flowrun": {"transfers.agreement", "transfers.errors", "transfers.settings",
                                     "transfers.staging", "transfers.connections", "transfers.logical_date"}}[leaf]
    imported = {i for i in _imports(MODULES[leaf])
                if not any(i == a or i.startswith(a + ".") for a in allowed)}
    assert imported == set()


def test_flowrun_lives_below_the_pipeline_and_the_pipeline_reexports_it():
    from transfers import flowrun, pipeline

    assert pipeline.FlowRun is flowrun.FlowRun
    assert pipeline.Resolvers is flowrun.Resolvers


def test_no_step_takes_an_untyped_run():
    # `run: Any` hid the privacy step's dependency on the pipeline; FlowRun is importable from below now.
    offenders = sorted(f"{name}: {line.strip()}" for name, path in MODULES.items()
                       for line in path.read_text(encoding="utf-8").splitlines()
                       if "run: Any" in line or "resolvers: Any" in line)
    assert offenders == []


def _runtime_edges() -> dict[str, set[str]]:
    """Module -> transfers modules it imports at run time (``if TYPE_CHECKING:`` blocks left out)."""
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                       for n in ast.walk(node)}
        found = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transfers"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & MODULES.keys()
                found |= subs or {node.module}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in MODULES}
        edges[name] = {m for m in found if m in MODULES and m != name}
    return edges


def test_no_import_cycles_outside_the_command_line():
    # The CLI's own cycle (cli <-> cli_*) is another item of issue 10; every other module must stay acyclic.
    edges = {k: {m for m in v if not m.startswith("transfers.cli")}
             for k, v in _runtime_edges().items() if not k.startswith("transfers.cli")}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert cycles == []
