"""Helpers for the privacy tests: edit the world's agreement, craft extracts, read what was sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd
import yaml

from tests.integration.conftest import World, read_delivery, sftp_conn
from transfers.privacy import pseudonymise
from transfers.privacy.step import pseudonym_key


def agreement_path(world: World, agreement: str = "mash-referrals") -> Path:
    return world.settings.config_dir / "agreements" / f"{agreement}.yaml"


def edit_agreement(world: World, change: Callable[[dict], None], agreement: str = "mash-referrals") -> None:
    path = agreement_path(world, agreement)
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()


def flow_of(data: dict, flow_id: str) -> dict:
    return next(f for f in data["flows"] if f["id"] == flow_id)


def exports_dir(world: World) -> Path:
    return Path(world.connections["rft_exports"].extra["path"])


def write_ed(world: World, frame: pd.DataFrame, on: date) -> None:
    path = exports_dir(world) / "ed" / f"attendances_{on.isoformat()}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)


def write_list(world: World, name: str, rows: list[dict]) -> str:
    """A consent register or opt-out list as CSV under the trust's export directory."""
    path = exports_dir(world) / "lists" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(rows[0]) if rows else ["subject", "status", "effective"]).to_csv(path, index=False)
    return f"lists/{name}"


def add_recipient(world: World, sshd, gpg_partner, flow_id: str, partner: str, conn_id: str, path: str) -> None:
    """Send ``flow_id`` to one more partner (own SFTP connection, own directory, pinned key)."""
    key_file = world.settings.keys / f"{partner}.asc"  # it may hold the partner's signing key already: add to it
    key_file.write_text((key_file.read_text() if key_file.exists() else "") + gpg_partner.public_key_path.read_text())
    world.connections[conn_id] = sftp_conn(conn_id, sshd)
    prefix = world.remote_root.name
    edit_agreement(world, lambda d: flow_of(d, flow_id)["to"].append(
        {"partner": partner, "sftp": conn_id, "path": f"{prefix}/{path}", "pgp_fingerprint": gpg_partner.fingerprint}))


def key_for(world: World, flow_key: str) -> bytes:
    key = pseudonym_key(world.run(flow_key), lambda name: world.secrets[name])
    assert key is not None
    return key


def pseudonyms(world: World, flow_key: str, identifiers) -> dict[str, str]:
    key = key_for(world, flow_key)
    return {i: pseudonymise(i, key) for i in identifiers}


def sent(world: World, gpg_partner, remote_dir: str) -> pd.DataFrame:
    frames = [read_delivery(gpg_partner, f) for f in world.delivered(remote_dir) if "notice" not in f.name]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def notices(world: World, gpg_partner, remote_dir: str) -> list[dict]:
    """Every notice in a recipient's directory, decrypted with the real gpg."""
    return [json.loads(gpg_partner.home.decrypt(p)) for p in world.delivered(remote_dir) if "-notice_" in p.name]


def payloads(world: World, kind: str, flow: str | None = None) -> list[dict]:
    ledger = world.settings.open_ledger()
    try:
        return [e.payload for e in ledger.entries(kind=kind, flow=flow)]
    finally:
        ledger.close()
