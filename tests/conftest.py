"""Real parts for tests: a private OpenSSH ``sshd`` (``tests.support.sshd``) and a partner's ``gpg`` keyring.

Nothing here is a mock. Keys (SSH host and client keys, OpenPGP key pairs) are
generated at run time in temporary directories and never committed. When a
part is missing the tests that need it skip, except with ``CI=true``, where
they fail: CI must prove the real parts work, not skip them.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The gate and the sshd live in tests/support so bench/ can start an sshd without this conftest;
# re-exported here for the tests that import them from it.
from tests.support.parts import require_part as require_part
from tests.support.sshd import SshServer as SshServer
from tests.support.sshd import free_port as _free_port  # noqa: F401
from tests.support.sshd import run_sshd as run_sshd


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A private OpenSSH ``sshd`` for the whole session (SFTP only, key login).

    Tests share it, so each should deliver into its own ``remote_dir``
    (``sshd.root / remote_dir`` is where the files land).
    """
    with run_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@dataclass
class GpgPartner:
    """A recipient's keyring with one key pair, and its exported public key."""

    home: Any  # transfers.devkit.gpg.GpgHome
    fingerprint: str
    public_key_path: Path


def _gpg_home(path: Path):
    require_part("gpg", shutil.which("gpg") is not None, "install it with: apt-get install -y gnupg")
    from transfers.devkit.gpg import GpgHome

    return GpgHome(path)


@pytest.fixture(scope="session")
def gpg_partner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgPartner]:
    """A partner with an RSA-3072 key pair made by ``gpg`` (expires in a year)."""
    base = tmp_path_factory.mktemp("partner")
    home = _gpg_home(base / "gnupg")
    fpr = home.generate_key("Test Partner (isp-transfers tests) <partner@example.invalid>", algo="rsa3072")
    public = home.export_public(fpr, base / "partner.asc")
    yield GpgPartner(home, fpr, public)
    home.close()


@dataclass
class GpgSender:
    """The sending party's signing key pair: public key exported, private key as its secret holds it."""

    fingerprint: str
    public_key_path: Path
    secret: str = field(repr=False)  # ASCII-armoured private key: the transfers_signing_key secret


@pytest.fixture(scope="session")
def gpg_sender(gpg_partner: GpgPartner, tmp_path_factory: pytest.TempPathFactory) -> GpgSender:
    """A sender's sign-only Ed25519 key, made in the recipient's keyring so ``gpg --decrypt`` can name the signer.

    A real recipient imports the sender's public key; here the same keyring made it.
    """
    base = tmp_path_factory.mktemp("sender")
    fpr = gpg_partner.home.generate_key("Test Sender (isp-transfers tests) <sender@example.invalid>", algo="cv25519",
                                        encryption_subkey=False)
    public = gpg_partner.home.export_public(fpr, base / "sender-signing.asc")
    return GpgSender(fpr, public, gpg_partner.home.export_secret(fpr))


@pytest.fixture
def gpg_home(tmp_path: Path) -> Iterator[Any]:
    """An empty ``GpgHome`` for one test, to make keys of any kind."""
    home = _gpg_home(tmp_path / "gnupg")
    yield home
    home.close()


@pytest.fixture
def chromium() -> None:
    """Debian's headless Chromium, for opening reports offline (see tests/browser.py)."""
    from tests.browser import chromium_path

    require_part("chromium", chromium_path() is not None, "apt-get install chromium")


@pytest.fixture(scope="session")
def mesh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """NHS England's mesh-sandbox on 127.0.0.1 (``tests.support.mesh_sandbox``), shared by the session.

    Its mailboxes are shared too: each test sends under its own ``local_id`` / filename and reads only those.
    """
    from tests.support.mesh_sandbox import run_mesh_sandbox, uv_binary

    uv = uv_binary()
    require_part("mesh-sandbox", uv is not None, "uv is needed to build its own environment")
    assert uv is not None
    try:
        with run_mesh_sandbox(tmp_path_factory.mktemp("mesh"), uv) as sandbox:
            yield sandbox
    except (RuntimeError, subprocess.SubprocessError) as exc:
        require_part("mesh-sandbox", False, str(exc)[-500:])
