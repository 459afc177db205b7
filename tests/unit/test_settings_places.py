"""Where config/, keys/ and var/ come from: arguments and TRANSFERS_* first, then a working directory
holding config/protocol.yaml, then the source checkout; an installed copy with neither is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import transfers.settings
from transfers.cli import app
from transfers.errors import ConfigError
from transfers.settings import PROJECT_ROOT, Settings, default_base

PLACES = ("TRANSFERS_HOME", "TRANSFERS_CONFIG_DIR", "TRANSFERS_KEYS_DIR")


@pytest.fixture(autouse=True)
def no_places_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PLACES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The package as an installed copy sees itself: its parent folder (site-packages) has no pyproject.toml."""
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.setattr(transfers.settings, "PROJECT_ROOT", site)
    return site


def deployment(folder: Path) -> Path:
    (folder / "config").mkdir(parents=True)
    (folder / "config" / "protocol.yaml").write_text("signatories: []\n")
    return folder


def test_a_working_directory_holding_config_gives_config_keys_and_var(monkeypatch, tmp_path):
    work = deployment(tmp_path / "work")
    monkeypatch.chdir(work)

    settings = Settings()

    assert (settings.config_dir, settings.keys, settings.home) == (work / "config", work / "keys", work / "var")


def test_the_working_directory_wins_over_the_checkout_and_an_install(monkeypatch, tmp_path, installed):
    work = deployment(tmp_path / "work")
    monkeypatch.chdir(work)

    assert default_base() == work
    assert Settings().home == work / "var"


def test_a_config_folder_without_protocol_yaml_is_not_a_deployments(monkeypatch, tmp_path):
    # Airflow's own compose file mounts a config/ (airflow.cfg) where its containers start.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "airflow.cfg").write_text("[core]\n")
    monkeypatch.chdir(tmp_path)

    assert default_base() == PROJECT_ROOT
    assert Settings().config_dir == PROJECT_ROOT / "config"


def test_elsewhere_a_checkout_keeps_its_own_config_and_var(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)

    settings = Settings()

    assert (settings.config_dir, settings.home, settings.keys) == (
        PROJECT_ROOT / "config", PROJECT_ROOT / "var", PROJECT_ROOT / "keys")


def test_environment_variables_win_over_the_working_directory(monkeypatch, tmp_path):
    work = deployment(tmp_path / "work")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(tmp_path / "etc" / "config"))
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("TRANSFERS_KEYS_DIR", str(tmp_path / "pinned"))

    settings = Settings()

    assert (settings.config_dir, settings.home, settings.keys) == (
        tmp_path / "etc" / "config", tmp_path / "state", tmp_path / "pinned")


def test_one_variable_set_leaves_the_others_to_the_working_directory(monkeypatch, tmp_path):
    work = deployment(tmp_path / "work")
    monkeypatch.chdir(work)
    monkeypatch.setenv("TRANSFERS_HOME", str(tmp_path / "state"))

    settings = Settings()

    assert (settings.config_dir, settings.home) == (work / "config", tmp_path / "state")


def test_an_install_run_away_from_any_config_is_refused_naming_where_it_looked(monkeypatch, tmp_path, installed):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)

    assert default_base() is None
    with pytest.raises(ConfigError) as refused:
        Settings()
    message = str(refused.value)
    assert str(empty / "config" / "protocol.yaml") in message
    assert "TRANSFERS_CONFIG_DIR" in message and "run transfers in the directory that holds config/" in message


def test_an_install_given_a_config_keeps_its_state_beside_it_not_in_site_packages(monkeypatch, tmp_path, installed):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(tmp_path / "etc" / "config"))

    settings = Settings()

    assert (settings.home, settings.keys) == (tmp_path / "etc" / "var", tmp_path / "etc" / "keys")
    assert not settings.home.is_relative_to(installed)


def test_the_cli_refuses_an_install_with_no_config_with_exit_2_and_no_traceback(monkeypatch, tmp_path, installed):
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(app, ["ledger", "verify"])

    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "no config directory" in result.output
