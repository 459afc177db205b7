"""The installed ``transfers``: a wheel built from this tree, in a fresh venv, run where a deployment keeps config/.

Slow (a wheel build and a venv of ~300 packages, linked from uv's cache after the first time), hence
``integration``. The venv is made without the project's own: ``uv venv`` + ``uv pip install <wheel>``,
so the package under test is the one in site-packages, whose parent folder holds no config/ or var/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.support.mesh_sandbox import uv_binary
from tests.support.parts import require_part

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Installed:
    transfers: Path
    site_packages: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    uv = uv_binary()
    require_part("uv", uv is not None, "install uv (https://docs.astral.sh/uv/)")
    assert uv is not None
    where = tmp_path_factory.mktemp("installed")
    env = _clean_env(where)
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(where / "dist"), str(ROOT)], check=True, env=env)
    (wheel,) = (where / "dist").glob("isp_transfers-*.whl")
    venv = where / "venv"
    subprocess.run([uv, "venv", "-q", str(venv)], check=True, env=env)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"), str(wheel)],
                   check=True, env=env)
    # Run away from this tree: `python -c` puts its working directory, with its transfers/, on sys.path.
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import transfers, pathlib; "
                           "print(pathlib.Path(transfers.__file__).parent.parent)"],
                          check=True, env=env, capture_output=True, text=True, cwd=where).stdout.strip()
    assert Path(site).name == "site-packages"
    yield Installed(venv / "bin" / "transfers", Path(site))


def _clean_env(where: Path) -> dict[str, str]:
    """This machine's environment without any TRANSFERS_* or Airflow setting, nor the project's venv."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRANSFERS_", "AIRFLOW_", "UV_PROJECT")) and k != "VIRTUAL_ENV"}
    env["AIRFLOW_HOME"] = str(where / "airflow")
    return env


def _pinned_host_key() -> str:
    public = Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _named_in_env(where: Path) -> dict[str, str]:
    """Every connection and secret the sample agreement names, defined (validate checks ids, not servers)."""
    env = _clean_env(where)
    for conn_id in ("CS_CASE_DB", "RFT_EXPORTS"):
        env[f"AIRFLOW_CONN_{conn_id}"] = "postgresql://reader@127.0.0.1:5432/test"
    for conn_id in ("SYP_SFTP", "CS_SFTP"):
        env[f"AIRFLOW_CONN_{conn_id}"] = json.dumps({"conn_type": "sftp", "host": "127.0.0.1", "login": "mash",
                                                     "extra": {"host_key": _pinned_host_key()}})
    env["AIRFLOW_VAR_MASH_PSEUDONYM_KEY"] = "a-test-pseudonym-key-of-no-value"
    env["AIRFLOW_VAR_TRANSFERS_SIGNING_KEY"] = "a signing key is only looked up by validate"
    return env


def _deployment(tmp_path: Path, name: str = "deployment") -> Path:
    """An empty folder with a copy of this tree's config/ and keys/, as an engineer would lay one out."""
    work = tmp_path / name
    work.mkdir()
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copytree(ROOT / "keys", work / "keys")
    return work


def _transfers(installed: Installed, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(installed.transfers), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_version_is_the_installed_distributions(installed, tmp_path):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]

    shown = _transfers(installed, tmp_path, _clean_env(tmp_path), "--version")

    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"isp-transfers {version}"


def test_validate_reads_the_working_directorys_config_and_keys(installed, tmp_path):
    work = _deployment(tmp_path)
    env = _named_in_env(tmp_path)

    ok = _transfers(installed, work, env, "validate")

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert f"{work / 'config'}: valid on" in ok.stdout
    assert "ok: 1 agreement(s), 2 flow(s) to send" in ok.stdout

    # The copy, not the checkout's, is what it reads: an edit there (unsigned by the partners) is refused.
    agreement = work / "config" / "agreements" / "mash-referrals.yaml"
    agreement.write_text(agreement.read_text(encoding="utf-8").replace(
        "name: Multi-Agency Safeguarding Hub (MASH) referrals", "name: MASH referrals, edited here"),
        encoding="utf-8")
    edited = _transfers(installed, work, env, "validate")
    assert edited.returncode == 2, edited.stdout + edited.stderr
    assert f"{agreement}: " in edited.stderr


def test_state_goes_into_the_working_directorys_var_never_site_packages(installed, tmp_path):
    work = _deployment(tmp_path)

    verified = _transfers(installed, work, _clean_env(tmp_path), "ledger", "verify")

    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (work / "var" / "ledger.db").is_file()
    assert not (installed.site_packages / "var").exists()
    assert not (installed.site_packages / "config").exists()


def test_without_a_config_anywhere_it_says_where_it_looked_and_what_to_do(installed, tmp_path):
    refused = _transfers(installed, tmp_path, _clean_env(tmp_path), "validate")

    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"there is no {tmp_path / 'config' / 'protocol.yaml'}" in refused.stderr
    assert "TRANSFERS_CONFIG_DIR" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (installed.site_packages / "var").exists()


def test_environment_variables_win_over_the_working_directory(installed, tmp_path):
    work, other = _deployment(tmp_path), _deployment(tmp_path, "other")
    env = {**_named_in_env(tmp_path), "TRANSFERS_CONFIG_DIR": str(other / "config"),
           "TRANSFERS_HOME": str(tmp_path / "state")}

    shown = _transfers(installed, work, env, "validate")
    verified = _transfers(installed, work, env, "ledger", "verify")

    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"{other / 'config'}: valid on" in shown.stdout
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert (tmp_path / "state" / "ledger.db").is_file()
    assert not (work / "var").exists()
