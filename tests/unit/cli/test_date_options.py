"""Date options are spelled one way in every command: ``--date`` for a run's logical date, ``--as-of`` for
"pretend today is"; the old spellings still work, hidden, with a one-line note on stderr."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import typer.main
from typer.testing import CliRunner

from transfers.cli import app
from transfers.ledger import Ledger
from transfers.ledger.records import Disclosure
from transfers.settings import PROJECT_ROOT

#: Every old spelling kept as a hidden alias, by command: (old, new).
RENAMED = {
    "validate": ("--on", "--as-of"),
    "purge": ("--now", "--as-of"),
    "certificates": ("--now", "--as-of"),
    "ledger verify": ("--now", "--as-of"),
    "report ig": ("--now", "--as-of"),
    "expectations export": ("--to", "--out"),
}
#: The options that take a date, whatever their name; --from/--to are report ig's range of days recorded.
DATE_OPTIONS = {"--date", "--as-of", "--from", "--to"}
#: Names an option taking a date might have been given.
DATE_NAME = re.compile(r"date|day|now|today|^--on$|as-of|when|since|until|^--at$")


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command

    return walk(typer.main.get_command(app), [])


def test_every_visible_date_option_is_date_as_of_or_the_ig_range_and_the_only_hidden_ones_are_old_spellings():
    hidden, dated = {}, {}
    for path, command in _commands():
        for param in command.params:
            if param.param_type_name != "option":
                continue
            if param.hidden:
                hidden[path] = param.opts[0]
            elif param.metavar == "YYYY-MM-DD" or DATE_NAME.search(param.opts[0]) or "YYYY" in (param.help or ""):
                dated.setdefault(path, set()).update(param.opts)

    assert hidden == {path: old for path, (old, _new) in RENAMED.items()}
    assert all(opts <= DATE_OPTIONS for opts in dated.values()), dated
    assert {path for path, opts in dated.items() if "--as-of" in opts} == set(RENAMED) - {"expectations export"}
    assert {path for path, opts in dated.items() if "--date" in opts} == {
        "run",
        "receive",
        "check",
        "unlock",
        "expectations export",
        "report quality",
    }
    assert dated["report ig"] == {"--from", "--to", "--as-of"}


def _certificates(monkeypatch, tmp_path, *args: str):
    home = tmp_path / "home"
    if not home.exists():
        home.mkdir()
        with Ledger(f"sqlite:///{home / 'ledger.db'}") as ledger:
            ledger.record(
                Disclosure(
                    agreement="mash-referrals",
                    flow="mash-referrals.A",
                    logical_date=date(2026, 5, 1),
                    recipient="south-yorkshire-police",
                    rows=5,
                    at=datetime(2026, 5, 2, tzinfo=UTC),
                )
            )
    monkeypatch.setenv("TRANSFERS_HOME", str(home))
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(PROJECT_ROOT / "config"))
    monkeypatch.setenv("COLUMNS", "300")
    return CliRunner().invoke(app, ["certificates", *args], catch_exceptions=False)


def test_the_old_spelling_gives_the_same_answer_with_one_deprecation_line_on_stderr(tmp_path, monkeypatch):
    new = _certificates(monkeypatch, tmp_path, "--as-of", "2032-06-01")
    old = _certificates(monkeypatch, tmp_path, "--now", "2032-06-01")

    assert new.exit_code == old.exit_code == 0, old.output
    assert "2026-05-01" in new.stdout and "overdue" in new.stdout  # judged as on 2032: past destroy-by
    assert old.stdout == new.stdout
    assert new.stderr == ""
    assert old.stderr.strip().splitlines() == [
        "deprecated: --now is the old spelling of --as-of (same meaning); use --as-of"
    ]


def test_giving_both_spellings_is_a_usage_error(tmp_path, monkeypatch):
    both = _certificates(monkeypatch, tmp_path, "--as-of", "2032-06-01", "--now", "2032-06-02")

    assert both.exit_code == 2
    assert "--now is the old spelling of --as-of: give only --as-of" in both.stderr
    assert both.stdout == ""


def test_a_date_option_names_itself_when_its_value_is_not_a_date(tmp_path, monkeypatch):
    result = _certificates(monkeypatch, tmp_path, "--as-of", "1 June")

    assert result.exit_code == 2
    assert "--as-of '1 June' is not a date (YYYY-MM-DD)" in result.stderr
