"""The MESH inbox's checks that need no server (``transfers/receive/mesh_inbox.py``)."""

from __future__ import annotations

import json

import pytest

from transfers.agreement.flow import MeshRoute
from transfers.connections import parse_connection
from transfers.delivery.mesh import MeshAccount
from transfers.receive.mesh_inbox import MeshInbox, _ours

BASE = "mash-referrals_A_2026-01-05"


def test_only_the_deliverys_encrypted_files_are_taken():
    assert _ours(f"{BASE}.csv.pgp", BASE) and _ours(f"{BASE}.manifest.json", BASE)
    assert _ours(f"{BASE}.manifest.json.asc", BASE)
    assert not _ours(f"{BASE}.csv", BASE) and not _ours(f"{BASE}./../x.pgp", BASE)
    assert not _ours("mash-referrals_A_2026-01-06.csv.pgp", BASE) and not _ours(None, BASE)


def test_collect_acknowledges_nothing_when_nothing_was_fetched_and_mesh_is_unreachable(tmp_path):
    from transfers.errors import DeliveryUnavailable

    conn = parse_connection("mesh_out", json.dumps({"conn_type": "mesh", "host": "http://127.0.0.1:9", "login": "X1",
                                                     "password": "p", "extra": {"shared_key": "k"}}))
    inbox = MeshInbox(MeshAccount.from_connection(conn), MeshRoute(mailbox="X1", workflow_id="W", connection="mesh_out"),
                      BASE, tmp_path / "cache")

    with pytest.raises(DeliveryUnavailable, match="MESH could not be reached for listing MESH mailbox X1"):
        inbox.collect()
