"""A sender's world for end-to-end tests, made of real parts.

The source is a fresh database in the local PostgreSQL, the recipients' SFTP
server is the private OpenSSH ``sshd`` from ``tests/conftest.py``, and the
recipient who decrypts is the real ``gpg``. The config is a copy of the
project's sample agreement, pinned to keys generated for this test session.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.conftest import require_part
from transfers.agreement import Config, load_config
from transfers.connections import ConnInfo
from transfers.devkit import synthetic
from transfers.devkit.signoff import sign_for_partners
from transfers.pipeline import FlowRun, Resolvers
from transfers.settings import PROJECT_ROOT, Settings
from transfers.staging import new_staging_key

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
LOGICAL_DATE = datetime.now(UTC).date() - timedelta(days=1)


@contextmanager
def throwaway_pg_database(prefix: str) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL database on 127.0.0.1:5432 (its URL and name), dropped afterwards; skip or fail without one."""
    from sqlalchemy import create_engine, text

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        require_part("PostgreSQL on 127.0.0.1:5432", False, f"{type(exc).__name__}: {str(exc)[:200]}")
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}", name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_source():
    """A throwaway PostgreSQL database holding the case system's ``referrals`` table."""
    with throwaway_pg_database("isp_src") as url_and_name:
        yield url_and_name


@dataclass
class World:
    """Everything one test's flow runs need; each test gets its own."""

    root: Path
    config: Config
    settings: Settings
    connections: dict[str, ConnInfo]
    remote_root: Path  # where this test's deliveries land on the shared sshd
    secrets: dict[str, str] = field(default_factory=dict, repr=False)  # a failing test's report must not show them
    staging_key: str = field(default_factory=new_staging_key)

    def resolvers(self) -> Resolvers:
        def connection(conn_id: str) -> ConnInfo:
            return self.connections[conn_id]

        def secret(name: str) -> str:
            from transfers.errors import SecretMissing

            if name not in self.secrets:  # as the real lookups say it
                raise SecretMissing(f"secret {name!r} is not set")
            return self.secrets[name]

        return Resolvers(connection, secret)

    def run(self, flow_key: str, logical_date: date = LOGICAL_DATE) -> FlowRun:
        return FlowRun(self.settings, self.config, self.config.flow(flow_key), logical_date,
                       staging_key=self.staging_key)

    def packaged(self, flow_key: str, partner: str):  # (FlowRun, Ledger, SftpTarget)
        """Run ``flow_key``'s steps up to the encrypted outbox for ``partner``: what deliver would send."""
        from transfers.delivery import SftpTarget
        from transfers.steps.check_agreement import check_agreement
        from transfers.steps.encrypt import encrypt
        from transfers.steps.extract import extract
        from transfers.steps.prepare import prepare
        from transfers.steps.quality import quality

        run = self.run(flow_key)
        ledger = self.settings.open_ledger()
        resolvers = self.resolvers()
        recipient = run.recipient(partner)
        check_agreement(run, resolvers, ledger)
        extract(run, resolvers, ledger)
        quality(run, resolvers, ledger)
        prepare(run, resolvers, ledger)
        encrypt(run, resolvers, ledger, recipient)
        target = SftpTarget.from_connection(resolvers.connection(recipient.sftp), recipient, settings=self.settings)
        return run, ledger, target

    def reload(self) -> None:
        """Load the (edited) config again, every partner having signed it again (the Tier 2 sign-off)."""
        self.resign()
        self.config = load_config(self.settings.config_dir)

    def resign(self) -> None:
        """Every partner signs the agreement files as they are now (one test key plays each partner)."""
        sign_for_partners(self.settings.config_dir, self.secrets["transfers_signing_key"])

    def delivered(self, remote_dir: str) -> list[Path]:
        """The encrypted files in one of this test's remote directories."""
        return sorted((self.remote_root / remote_dir).glob("*.pgp"))

    def remote_names(self, remote_dir: str) -> list[str]:
        path = self.remote_root / remote_dir
        return sorted(p.name for p in path.iterdir()) if path.exists() else []


def sftp_conn(conn_id: str, sshd, host_key: str | None = None) -> ConnInfo:
    return ConnInfo(
        conn_id=conn_id,
        conn_type="sftp",
        host=sshd.host,
        port=sshd.port,
        login=sshd.username,
        extra={"host_key": host_key or sshd.host_key_line, "private_key": sshd.client_private_key},
    )


def write_config(root: Path, fingerprint: str, remote_prefix: str, *, edit=None,
                 signing_fingerprint: str | None = None) -> Path:
    """Copy config/: recipients pinned to ``fingerprint``, remote paths under a prefix, live today.

    With ``signing_fingerprint``, every partner (each signs the agreement, senders sign deliveries) is
    pinned to that signing key in protocol.yaml (one key for all: one test process plays every partner,
    with one ``transfers_signing_key`` secret).
    """
    config_dir = root / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    if signing_fingerprint is not None:
        pin_partners(config_dir, signing_fingerprint)
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    today = datetime.now(UTC).date()
    data["in_force"], data["review_by"] = today - timedelta(days=60), today + timedelta(days=300)
    for flow in data["flows"]:
        for recipient in flow["to"]:
            recipient["pgp_fingerprint"] = fingerprint
            recipient["path"] = f"{remote_prefix}/{recipient['path']}"
    if edit:
        edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return config_dir


def pin_partners(config_dir: Path, signing_fingerprint: str) -> None:
    """Pin every agreement partner's (so every flow sender's) ``signing_fingerprint`` in the copy's protocol.yaml."""
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    agreements = [yaml.safe_load(path.read_text()) for path in (config_dir / "agreements").glob("*.yaml")]
    senders = {flow["from"] for data in agreements for flow in data.get("flows", [])}
    senders |= {partner for data in agreements for partner in data.get("partners", [])}
    for signatory in protocol["signatories"]:
        if signatory["id"] in senders:
            signatory["signing_fingerprint"] = signing_fingerprint
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))


def pin_and_sign(world: World, partner: str, fingerprint: str, secret: str) -> None:
    """Pin ``partner``'s signing key to ``fingerprint`` (public key already in its key file) and sign off as it."""
    protocol_path = world.settings.config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    next(s for s in protocol["signatories"] if s["id"] == partner)["signing_fingerprint"] = fingerprint
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    sign_for_partners(world.settings.config_dir, secret)


def write_keys(keys: Path, gpg_partner, gpg_sender) -> None:
    """Each partner's key file: the recipients' encryption key, and the signing key every partner signs with."""
    keys.mkdir(exist_ok=True)
    recipient, signing = gpg_partner.public_key_path.read_text(), gpg_sender.public_key_path.read_text()
    (keys / "south-yorkshire-police.asc").write_text(recipient + signing)  # receives flow A, signs the agreement
    (keys / "rotherham-childrens-services.asc").write_text(recipient + signing)  # receives flow B, sends flow A
    (keys / "rotherham-nhs-ft.asc").write_text(signing)


@pytest.fixture
def world(tmp_path, sshd, gpg_partner, gpg_sender, pg_source) -> World:
    """The sample agreement's two flows, wired to real PostgreSQL, sshd and gpg."""
    return make_world(tmp_path, sshd, gpg_partner, gpg_sender, pg_source[0])


def make_world(tmp_path: Path, sshd, gpg_partner, gpg_sender, url: str) -> World:
    """A ``World`` under ``tmp_path`` (for a fixture of a wider scope than ``world``'s)."""
    synthetic.write_referrals_table(url, synthetic.referrals(40, LOGICAL_DATE))
    exports = tmp_path / "exports"
    attendances = synthetic.ed_attendances(30, LOGICAL_DATE)
    synthetic.write_ed_csv(exports, LOGICAL_DATE, attendances)
    synthetic.write_consent_lists(exports, list(attendances["nhs_number"]), LOGICAL_DATE)  # nobody withdrew
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    config_dir = write_config(tmp_path, gpg_partner.fingerprint, prefix, signing_fingerprint=gpg_sender.fingerprint)
    keys = tmp_path / "keys"
    write_keys(keys, gpg_partner, gpg_sender)
    pg = url.split("@", 1)[1]
    host_port, database = pg.split("/", 1)
    host, port = host_port.split(":")
    settings = Settings(home=tmp_path / "state", config_dir=config_dir, keys_dir=keys)
    sign_for_partners(config_dir, gpg_sender.secret)  # every partner signs off the sample agreement
    return World(
        root=tmp_path,
        config=load_config(config_dir),
        settings=settings,
        connections={
            "cs_case_db": ConnInfo("cs_case_db", "postgres", host=host, port=int(port), login="postgres",
                                   schema=database),
            "rft_exports": ConnInfo("rft_exports", "fs", extra={"path": str(exports)}),
            "syp_sftp": sftp_conn("syp_sftp", sshd),
            "cs_sftp": sftp_conn("cs_sftp", sshd),
        },
        remote_root=sshd.root / prefix,
        secrets={"mash_pseudonym_key": "test-pseudonym-key-" + uuid.uuid4().hex,
                 "transfers_signing_key": gpg_sender.secret},
    )


def read_delivery(gpg_partner, path: Path) -> pd.DataFrame:
    """Decrypt a delivered file with the real gpg, as the recipient would."""
    import io

    plaintext = gpg_partner.home.decrypt(path)
    return pd.read_csv(io.BytesIO(plaintext), dtype=str, keep_default_na=False)


def files_containing(root: Path, needles: list[str]) -> list[Path]:
    """Every file under ``root`` whose bytes contain any of ``needles`` in clear."""
    hits = []
    encoded = [n.encode() for n in needles if n]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(n in data for n in encoded):
                hits.append(path)
    return hits


def conn_json(conn: ConnInfo) -> str:
    """A connection as a user writes it in ``AIRFLOW_CONN_<ID>`` (JSON form)."""
    return json.dumps({
        "conn_type": conn.conn_type, "host": conn.host, "port": conn.port, "login": conn.login,
        "password": conn.password, "schema": conn.schema, "extra": dict(conn.extra),
    })


@pytest.fixture
def cli(world, monkeypatch):
    """``transfers ...`` with the environment a user would set for this world.

    The environment is set at each call, from ``world.connections`` as they are
    then, so a test can take a server down by changing its connection.
    """
    from typer.testing import CliRunner

    from transfers.cli import app

    def invoke(*args: str, stdin: str | None = None):
        monkeypatch.setenv("TRANSFERS_HOME", str(world.settings.home))
        monkeypatch.setenv("TRANSFERS_CONFIG_DIR", str(world.settings.config_dir))
        monkeypatch.setenv("TRANSFERS_KEYS_DIR", str(world.settings.keys))
        monkeypatch.setenv("AIRFLOW_VAR_MASH_PSEUDONYM_KEY", world.secrets["mash_pseudonym_key"])
        if "transfers_signing_key" in world.secrets:
            monkeypatch.setenv("AIRFLOW_VAR_TRANSFERS_SIGNING_KEY", world.secrets["transfers_signing_key"])
        else:  # a test took the secret away: the user's environment must not lend one
            monkeypatch.delenv("AIRFLOW_VAR_TRANSFERS_SIGNING_KEY", raising=False)
        for conn_id, conn in world.connections.items():
            monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(conn))
        return CliRunner().invoke(app, list(args), input=stdin, catch_exceptions=False)

    return invoke


@pytest.fixture
def mounts():
    """Real mounts for one test (it must run as root): a tiny tmpfs that fills up, a read-only directory.

    Every mount is undone after the test, last first.
    """
    import subprocess
    from types import SimpleNamespace

    made: list[Path] = []

    def mount(*args: str, path: Path) -> Path:
        done = subprocess.run(["mount", *args, str(path)], capture_output=True, text=True)
        require_part("mounting (the tests must run as root)", done.returncode == 0, done.stderr.strip())
        made.append(path)
        return path

    def tmpfs(path: Path, size: str = "64k") -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path=path)

    def read_only(path: Path) -> Path:
        """``path`` bound onto itself, read-only: even root cannot write there (EROFS)."""
        path.mkdir(parents=True, exist_ok=True)
        mount("--bind", str(path), path=path)
        return mount("-o", "remount,bind,ro", path=path)

    yield SimpleNamespace(tmpfs=tmpfs, read_only=read_only)
    for path in reversed(made):
        subprocess.run(["umount", str(path)], check=False, capture_output=True)
