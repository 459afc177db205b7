"""Flow A over NHS MESH between two deployments: the sender posts to mesh-sandbox, the police receive from
their own MESH inbox, load it, acknowledge the messages and return the signed receipt through MESH."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from tests.integration.conftest import LOGICAL_DATE
from tests.integration.exchange_world import Exchange, exchange, police_keys, police_sshd
from tests.support.mesh_sandbox import RECIPIENT, RETURN_WORKFLOW, SENDER, WORKFLOW
from transfers.connections import parse_connection
from transfers.ledger.records import Acknowledgement, Received
from transfers.receipt import Receipt, receipt_name

__all__ = ["exchange", "police_keys", "police_sshd"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration

BASE = f"mash-referrals_A_{LOGICAL_DATE.isoformat()}"


@pytest.fixture
def mesh_exchange(exchange: Exchange, mesh_sandbox) -> Iterator[Exchange]:
    """Flow A's recipient reached by MESH: the sender's ``mesh_out`` is X26ABC1, the police's is X26ABC2."""
    world = exchange.sender
    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    recipient = data["flows"][0]["to"][0]
    del recipient["sftp"], recipient["path"]
    recipient["mesh"] = {"mailbox": RECIPIENT, "workflow_id": WORKFLOW, "connection": "mesh_out",
                         "receipt_workflow_id": RETURN_WORKFLOW}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    world.connections["mesh_out"] = parse_connection("mesh_out", mesh_sandbox.connection_json(SENDER))
    exchange.police.connections["mesh_out"] = parse_connection("mesh_out", mesh_sandbox.connection_json(RECIPIENT))
    mesh_sandbox.drain(SENDER, RECIPIENT)
    yield exchange
    mesh_sandbox.drain(SENDER, RECIPIENT)


def _waiting(mesh_sandbox, mailbox: str) -> dict[str, str]:
    """File name -> message id of the delivery's messages waiting in ``mailbox``."""
    with mesh_sandbox.client(mailbox) as client:
        names = {m: client.retrieve_message(m).filename for m in client.list_messages()}
    return {name: m for m, name in names.items() if name and name.startswith(BASE)}


def test_a_delivery_through_mesh_is_loaded_acknowledged_and_answered_by_a_signed_receipt(mesh_exchange, mesh_sandbox,
                                                                                         gpg_partner):
    ex = mesh_exchange
    ex.send()
    sent = _waiting(mesh_sandbox, RECIPIENT)
    assert f"{BASE}.manifest.json" in sent and any(n.endswith(".pgp") for n in sent)

    result = ex.police.receive()

    assert result["status"] == "accepted" and result["rows"] > 0 and not result["already"]
    with ex.police.settings.open_ledger() as ledger:
        [received] = list(ledger.records(Received))
    assert (received.status, received.rows) == ("accepted", result["rows"])
    assert _waiting(mesh_sandbox, RECIPIENT) == {}  # acknowledged once recorded
    assert not ex.police.settings.layout.mailbox_cache("mash-referrals", "A", LOGICAL_DATE).exists()
    # The signed receipt came back to the sending mailbox as MESH messages.
    back = _waiting(mesh_sandbox, SENDER)
    assert set(back) == {receipt_name(BASE), receipt_name(BASE) + ".asc"}
    with mesh_sandbox.client(SENDER) as client:
        data = client.retrieve_message(back[receipt_name(BASE)]).read()
    receipt = Receipt.parse(data, where="mesh")
    assert receipt.accepted and receipt.rows == result["rows"]

    again = ex.police.receive()

    assert again["already"] and _waiting(mesh_sandbox, SENDER) == back  # no second receipt message
    # The sender's wait step reads the receipt from its own MESH inbox, verifies and records it, then acknowledges.
    collected = ex.collect()
    assert collected["status"] == "acknowledged" and collected["receipt_sha256"] == received.receipt_sha256
    assert _waiting(mesh_sandbox, SENDER) == {}
    [ack] = ex.sender_records(Acknowledgement)
    assert (ack.status, ack.rows) == ("acknowledged", result["rows"])


def test_nothing_in_the_mesh_inbox_yet_is_pending(mesh_exchange):
    from transfers.errors import DeliveryPending

    with pytest.raises(DeliveryPending, match=f"MESH mailbox {RECIPIENT}: no complete delivery {BASE}"):
        mesh_exchange.police.receive()
