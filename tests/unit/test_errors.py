"""The error tree: every class in transfers/errors.py, drawn in its docstring, with its own exit code."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import typer

import transfers
from transfers import errors
from transfers.cli import _console

PACKAGE = Path(transfers.__file__).parent
CLASSES = [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
           if issubclass(obj, errors.TransferError) and obj.__module__ == errors.__name__]


def _tree_names() -> set[str]:
    """The class names drawn in the docstring's tree (one per line, after the box-drawing prefix)."""
    names = set()
    for line in errors.__doc__.splitlines():
        stripped = line.strip().lstrip("│├└─ ")
        if line.startswith("    ") and stripped:
            names.add(stripped.split()[0])
    return names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_is_drawn_in_the_docstring_tree(cls):
    assert cls.__name__ in _tree_names()


def test_the_tree_draws_no_class_that_does_not_exist():
    assert _tree_names() == {cls.__name__ for cls in CLASSES}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_an_exit_code_that_says_whether_to_retry(cls):
    assert isinstance(cls.exit_code, int)
    # Retriable classes exit 75 (try later) unless they say more (4: another run holds the lock).
    if issubclass(cls, errors.RetriableError):
        assert cls.retriable and cls.exit_code in (75, 4)
    else:
        assert not cls.retriable and cls.exit_code in (1, 2, 3)


def test_the_exit_codes_scripts_rely_on_are_kept():
    assert errors.TerminalError.exit_code == 1
    assert errors.ConfigError.exit_code == 2
    assert errors.LedgerTampered.exit_code == 3
    assert errors.RunLocked.exit_code == 4
    assert errors.RetriableError.exit_code == 75
    assert errors.LedgerUnavailable.exit_code == 75
    assert errors.StateError.exit_code == 1 and not errors.StateError.retriable
    assert issubclass(errors.DisclosureRiskBlocked, errors.PrivacyError)


def test_no_error_class_is_defined_outside_errors_py():
    """A class deriving from one in errors.py, defined anywhere else in transfers/, is outside the tree."""
    names = {cls.__name__ for cls in CLASSES}
    outside = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & names:
                    outside.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert outside == []


@pytest.mark.parametrize(("exc", "code", "shown"), [
    (errors.ConfigError("agreement x.yaml: flows[0].to: missing"), 2, "error:"),
    (errors.LedgerTampered("entry 3 does not chain"), 3, "error:"),
    (errors.RunLocked("already running since 01:00"), 4, "not started:"),
    (errors.LedgerUnavailable("ledger database not reachable"), 75, "temporary failure:"),
    (errors.StateError("nothing packaged; run the package step first"), 1, "error:"),
])
def test_a_command_ends_with_the_exit_code_of_its_error_class(exc, code, shown, capsys):
    with pytest.raises(typer.Exit) as caught:
        _console.fail(exc)
    assert caught.value.exit_code == code
    assert shown in capsys.readouterr().err


def test_fail_reads_the_code_from_the_error_not_from_a_mapping_in_the_cli(capsys):
    class Custom(errors.TerminalError):
        exit_code = 9

    with pytest.raises(typer.Exit) as caught:
        _console.fail(Custom("x"))
    assert caught.value.exit_code == 9
