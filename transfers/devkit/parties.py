"""The demo's partners: one deployment per party of the sample agreement, each its own.

Every party gets what a real partner holds for itself: its own ``TRANSFERS_HOME`` (ledger,
outbox, archive, store), its own Airflow home, its own signing key (and, if it receives, its own
decryption key and an SFTP server whose upload root is its inbox), and its own secrets. What
partners share is what every partner of an agreement holds: the agreement files, the Tier 1
register with each party's pinned signing key, and each party's public keys under ``keys/``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from transfers.devkit.gpg import GpgHome
from transfers.devkit.signoff import sign_for_partners
from transfers.settings import PROJECT_ROOT

__all__ = ["Party", "hold_back_instead_of_blocking", "make_parties"]


@dataclass
class Party:
    """One partner's deployment on this machine."""

    id: str
    root: Path
    sends: list[str] = field(default_factory=list)  # flow keys <agreement>.<flow> from this party
    receives: list[str] = field(default_factory=list)  # flow keys to it
    signing_fingerprint: str = ""
    decryption_fingerprint: str | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def home(self) -> Path:
        return self.root / "state"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def inbox(self) -> Path:
        """Its SFTP server's upload root: partners' deliveries land under it (TRANSFERS_INBOX_DIR)."""
        return self.root / "inbox"

    def write_env(self) -> Path:
        """The party's own settings and throwaway secrets, to go on exploring: ``set -a; . <file>; set +a``."""
        path = self.root / "party.env"
        path.touch(mode=0o600)
        path.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(self.env.items())
                                if k.startswith(("TRANSFERS_", "AIRFLOW_", "AIRFLOW__"))))
        return path


def hold_back_instead_of_blocking(agreement: dict[str, Any], dimensions: Collection[str]) -> dict[str, list[str]]:
    """Make each flow of ``agreement`` (its YAML as data) quarantine where it would block on ``dimensions``.

    ``warn`` stays as it is: it already lets a run deliver. Returns the characteristics
    changed, by flow id.
    """
    changed: dict[str, list[str]] = {}
    for flow in agreement["flows"]:
        on_failure = flow.setdefault("quality", {}).setdefault("on_failure", {})
        # An unset characteristic blocks (QualityPolicy.policy).
        moved = [d for d in dimensions if on_failure.get(d, "block") == "block"]
        on_failure.update(dict.fromkeys(moved, "quarantine"))
        if moved:
            changed[flow["id"]] = moved
    return changed


def make_parties(
    workspace: Path, gpg: GpgHome, today: date, *, hold_back: Collection[str] = ()
) -> tuple[dict[str, Party], Path]:
    """Copy ``config/`` into ``workspace``, make each party's keys with ``gpg``, pin them, and sign off.

    Each recipient's encryption key is pinned in the agreement (``to[].pgp_fingerprint``), each
    party's signing key in the Tier 1 register (``signing_fingerprint``); ``keys/<party>.asc`` holds
    its public keys. Each party signs the agreement with its own key, as each owner would with
    ``transfers agreement sign``. In the copy, a failure of a ``hold_back`` characteristic
    quarantines the failing records where the agreement would block the run
    (:func:`hold_back_instead_of_blocking`).

    Returns:
        The parties by id, and the shared config directory.
    """
    config_dir = workspace / "config"
    shutil.copytree(PROJECT_ROOT / "config", config_dir)
    keys_dir = workspace / "keys"
    keys_dir.mkdir()
    path = config_dir / "agreements" / "mash-referrals.yaml"
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    if not data["in_force"] <= today <= data["review_by"]:
        print(f"    the sample agreement is not live today ({data['in_force']} to {data['review_by']}): "
              "the demo copy moves its dates so it can run")
        data["in_force"], data["review_by"] = today - timedelta(days=30), today + timedelta(days=335)
    for flow_id, moved in hold_back_instead_of_blocking(data, hold_back).items():
        print(f"    the demo copy of flow {flow_id} holds back the records failing {', '.join(moved)} "
              "instead of blocking the run, so the run delivers the rest")
    parties = {pid: Party(pid, workspace / pid) for pid in data["partners"]}
    for flow in data["flows"]:
        key = f"{data['id']}.{flow['id']}"
        parties[flow["from"]].sends.append(key)
        for recipient in flow["to"]:
            party = parties[recipient["partner"]]
            party.receives.append(key)
            if party.decryption_fingerprint is None:
                party.decryption_fingerprint = gpg.generate_key(f"{party.id} (demo) <{party.id}@demo.invalid>",
                                                                algo="cv25519")
            recipient["pgp_fingerprint"] = party.decryption_fingerprint
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    protocol_path = config_dir / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    for party in parties.values():
        party.signing_fingerprint = gpg.generate_key(f"{party.id} signing (demo) <{party.id}-signing@demo.invalid>",
                                                     algo="cv25519", encryption_subkey=False)
        next(s for s in protocol["signatories"] if s["id"] == party.id)["signing_fingerprint"] = \
            party.signing_fingerprint
        public = ""
        for fpr in (party.decryption_fingerprint, party.signing_fingerprint):
            if fpr:
                public += gpg.export_public(fpr, workspace / f"{party.id}-{fpr[-8:]}.asc").read_text()
        (keys_dir / f"{party.id}.asc").write_text(public)
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    for agreement_id, partner, sig in sign_for_partners(
            config_dir, *(gpg.export_secret(p.signing_fingerprint) for p in parties.values())):
        print(f"    {agreement_id} signed off by {partner} with its own key: {sig.relative_to(workspace)}")
    for party in parties.values():
        party.root.mkdir()
        party.env.update({
            "TRANSFERS_PARTY": party.id,
            "TRANSFERS_CONFIG_DIR": str(config_dir),
            "TRANSFERS_KEYS_DIR": str(keys_dir),
            "TRANSFERS_HOME": str(party.home),
            "AIRFLOW_HOME": str(party.airflow_home),
            # Its own private keys, as its secrets backend would hold them (throwaway, made now).
            "AIRFLOW_VAR_TRANSFERS_SIGNING_KEY": gpg.export_secret(party.signing_fingerprint),
        })
        if party.decryption_fingerprint:
            party.inbox.mkdir()
            party.env["TRANSFERS_INBOX_DIR"] = str(party.inbox)
            party.env["AIRFLOW_VAR_TRANSFERS_DECRYPTION_KEY"] = gpg.export_secret(party.decryption_fingerprint)
    return parties, config_dir
