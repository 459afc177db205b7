"""The CLI is a package whose command modules share one leaf, ``_console``, and never import each other in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import transfers.cli

CLI = Path(transfers.cli.__file__).parent


def _imports(path: Path) -> set[str]:
    """Every ``transfers.cli...`` module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("transfers"):
            if node.module == "transfers":
                found |= {f"transfers.{a.name}" for a in node.names}
            elif node.module == "transfers.cli":
                # `from transfers.cli import ledger` names a module; `... import app` names the package.
                found |= {f"transfers.cli.{a.name}" if (CLI / f"{a.name}.py").exists() else "transfers.cli"
                          for a in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("transfers")}
    return {name for name in found if name == "transfers.cli" or name.startswith("transfers.cli.")}


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in CLI.glob("*.py"):
        name = "transfers.cli" if path.name == "__init__.py" else f"transfers.cli.{path.stem}"
        modules[name] = _imports(path) - {name}
    return modules


def test_the_console_module_imports_no_other_cli_module():
    assert _graph()["transfers.cli._console"] == set()


def test_no_command_module_imports_the_package_that_assembles_the_app():
    importers = sorted(name for name, deps in _graph().items() if "transfers.cli" in deps)
    assert importers == []


def test_the_cli_modules_import_each_other_without_a_cycle():
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"import cycle: {' -> '.join((*path, name))}"
        if name in done:
            return
        for dep in graph.get(name, ()):
            visit(dep, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_the_old_flat_cli_modules_are_gone():
    package = CLI.parent
    assert not [p.name for p in package.glob("cli*.py")]


def test_no_cli_module_finds_a_command_group_by_walking_typers_registered_groups():
    assert not [p.name for p in CLI.glob("*.py") if "registered_groups" in p.read_text(encoding="utf-8")]


def test_report_holds_both_quality_and_ig_and_agreement_render_sign_schema():
    import typer
    from typer import _click

    root = typer.main.get_command(transfers.cli.app)
    ctx = _click.Context(root)
    groups = {name: root.get_command(ctx, name) for name in ("report", "agreement", "ledger", "keys", "consent",
                                                             "subject", "expectations", "hold", "notices")}
    listed = {name: group.list_commands(_click.Context(group)) for name, group in groups.items()}
    assert listed == {"report": ["quality", "ig"], "agreement": ["render", "sign", "schema"], "ledger": ["verify", "show"],
                      "keys": ["staging"], "consent": ["withdraw"], "subject": ["verify", "history"],
                      "expectations": ["export"], "hold": ["add", "remove", "list"],
                      "notices": ["apply", "confirmations"]}
    assert root.list_commands(ctx)[:9] == ["validate", "run", "receive", "receipts", "certificates", "purge", "check",
                                             "correct", "unlock"]
