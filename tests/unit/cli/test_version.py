"""``transfers --version``: the version of the installed distribution, from its metadata."""

from __future__ import annotations

from importlib.metadata import version

from typer.testing import CliRunner

from transfers.cli import app, installed_version


def test_version_prints_the_installed_distributions_version():
    result = CliRunner().invoke(app, ["--version"])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"isp-transfers {version('isp-transfers')}"
    assert installed_version() == version("isp-transfers")


def test_version_runs_no_command_and_needs_no_config(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(tmp_path / "nowhere"))

    result = CliRunner().invoke(app, ["--version", "validate"])

    assert result.exit_code == 0, result.output
    assert "problem" not in result.output
