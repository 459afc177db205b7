"""Two parties of one agreement on one machine, each with its own home, ledger, keys and SFTP server.

The sender is the ``world`` fixture's deployment (Children's Services, sending flow A). The
recipient (South Yorkshire Police) has its own ``TRANSFERS_HOME``, its own ledger, its own store
(a throwaway PostgreSQL database), its own secrets (its decryption key and its signing key) and its
own OpenSSH ``sshd``, whose upload root is its inbox: the sender's ``syp_sftp`` connection points
there. Both hold the same agreement files and the same partners' public keys, as partners do.

``mailbox_exchange`` is the same world with the police polling that server as a remote mailbox
(``TRANSFERS_MAILBOX=syp_mailbox``, host key pinned, no local inbox) instead of reading it as their
own directory.

Keys, all made at run time: the sender signs with ``gpg_sender``; the police decrypt with
``gpg_partner``'s key and sign receipts with their own key, made here in the same keyring so
``gpg`` can name either signer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pytest
import yaml

from tests.conftest import GpgPartner, GpgSender, SshServer, run_sshd
from tests.integration.conftest import LOGICAL_DATE, World, sftp_conn, throwaway_pg_database
from transfers.agreement import Config, load_config
from transfers.connections import ConnInfo
from transfers.devkit.signoff import sign_for_partners
from transfers.pipeline import Resolvers
from transfers.settings import Settings

SENDER, RECIPIENT = "rotherham-childrens-services", "south-yorkshire-police"
FLOW = "mash-referrals.A"


@dataclass(frozen=True)
class PoliceKeys:
    signing_fingerprint: str
    signing_public: Path
    signing_secret: str = field(repr=False)
    decryption_secret: str = field(repr=False)


@dataclass
class Party:
    """One deployment: who it is, its settings (home, inbox, store) and its secrets."""

    name: str
    settings: Settings
    secrets: dict[str, str] = field(repr=False)
    connections: dict[str, ConnInfo] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> Config:
        return load_config(self.settings.config_dir)

    def resolvers(self) -> Resolvers:
        def connection(conn_id: str) -> ConnInfo:
            if conn_id not in self.connections:
                raise AssertionError(f"the recipient needs no connection but its mailbox (asked for {conn_id!r})")
            return self.connections[conn_id]

        def secret(name: str) -> str:
            from transfers.errors import SecretMissing

            if name not in self.secrets:
                raise SecretMissing(f"secret {name!r} is not set")
            return self.secrets[name]

        return Resolvers(connection, secret)

    def receive(self, logical_date: date = LOGICAL_DATE, **kwargs):
        from transfers.receive.run import receive

        config = self.config
        with self.settings.open_ledger() as ledger:
            return receive(self.settings, config, config.flow(FLOW), logical_date, self.resolvers(), ledger,
                           me=self.name, **kwargs)


@dataclass
class Exchange:
    sender: World
    police: Party
    police_sshd: SshServer
    keys: PoliceKeys
    store_url: str

    @property
    def inbox(self) -> Path:
        """Where flow A's deliveries land at the police (their sshd's root + the flow's path): their inbox,
        or the directory behind their remote mailbox."""
        return self.police_sshd.root / self.sender.config.flow(FLOW).flow.to[0].path

    def send(self, logical_date: date = LOGICAL_DATE) -> None:
        """The sender's whole night for flow A, as ``transfers run`` does it."""
        from transfers.pipeline import run_flow

        run_flow(self.sender.run(FLOW, logical_date), self.sender.resolvers())

    def collect(self, logical_date: date = LOGICAL_DATE):
        """The sender's wait step: collect the police's receipt over SFTP, verify it, record it."""
        from transfers.steps.await_receipt import await_receipt

        run = self.sender.run(FLOW, logical_date)
        with self.sender.settings.open_ledger() as ledger:
            return await_receipt(run, self.sender.resolvers(), ledger, run.recipient(RECIPIENT))

    def sender_records(self, cls):
        with self.sender.settings.open_ledger() as ledger:
            return list(ledger.records(cls))


@pytest.fixture(scope="session")
def police_keys(gpg_partner: GpgPartner, tmp_path_factory: pytest.TempPathFactory) -> PoliceKeys:
    base = tmp_path_factory.mktemp("police")
    fpr = gpg_partner.home.generate_key("SYP receipts (isp-transfers tests) <syp@example.invalid>", algo="cv25519",
                                        encryption_subkey=False)
    public = gpg_partner.home.export_public(fpr, base / "syp-signing.asc")
    return PoliceKeys(fpr, public, gpg_partner.home.export_secret(fpr),
                      gpg_partner.home.export_secret(gpg_partner.fingerprint))


@pytest.fixture
def police_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """The police's own SFTP server: its upload root is their inbox."""
    with run_sshd(tmp_path_factory.mktemp("syp-sshd")) as server:
        yield server


@pytest.fixture
def exchange(world: World, tmp_path: Path, police_sshd: SshServer, police_keys: PoliceKeys,
             gpg_sender: GpgSender) -> Iterator[Exchange]:
    yield from _exchange(world, tmp_path, police_sshd, police_keys, gpg_sender, mailbox=False)


@pytest.fixture
def mailbox_exchange(world: World, tmp_path: Path, police_sshd: SshServer, police_keys: PoliceKeys,
                     gpg_sender: GpgSender) -> Iterator[Exchange]:
    """The police poll ``police_sshd`` as a remote mailbox (``syp_mailbox``, host key pinned); no local inbox."""
    yield from _exchange(world, tmp_path, police_sshd, police_keys, gpg_sender, mailbox=True)


def _exchange(world: World, tmp_path: Path, police_sshd: SshServer, police_keys: PoliceKeys,
              gpg_sender: GpgSender, *, mailbox: bool) -> Iterator[Exchange]:
    config_dir, keys_dir = world.settings.config_dir, world.settings.keys
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    next(s for s in protocol["signatories"] if s["id"] == RECIPIENT)["signing_fingerprint"] = \
        police_keys.signing_fingerprint
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    police_key_file = keys_dir / f"{RECIPIENT}.asc"
    police_key_file.write_text(police_key_file.read_text() + police_keys.signing_public.read_text())
    # Each partner signs off with its own key: the police with theirs, the others with the sender's.
    sign_for_partners(config_dir, gpg_sender.secret, police_keys.signing_secret)
    world.config = load_config(config_dir)
    # The sender delivers flow A to the police's own server (the path under its root is the flow's).
    world.connections["syp_sftp"] = sftp_conn("syp_sftp", police_sshd)
    world.remote_root = police_sshd.root / world.remote_root.name
    world.resign = lambda: sign_for_partners(config_dir, gpg_sender.secret, police_keys.signing_secret)  # type: ignore[method-assign]
    with throwaway_pg_database("syp_store") as (url, _name):
        where: dict[str, object] = {"mailbox": "syp_mailbox"} if mailbox else {"inbox_dir": police_sshd.root}
        police = Party(RECIPIENT, Settings(home=tmp_path / "syp-state", config_dir=config_dir, keys_dir=keys_dir,
                                           store_url=url, party=RECIPIENT, **where),  # type: ignore[arg-type]
                       secrets={"transfers_signing_key": police_keys.signing_secret,
                                "transfers_decryption_key": police_keys.decryption_secret},
                       connections={"syp_mailbox": sftp_conn("syp_mailbox", police_sshd)} if mailbox else {})
        yield Exchange(world, police, police_sshd, police_keys, url)
