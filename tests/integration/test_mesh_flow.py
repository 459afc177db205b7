"""A flow to a MESH recipient, end to end: PostgreSQL in, NHS England's mesh-sandbox out, real gpg decrypts."""

from __future__ import annotations

import pytest

from tests.integration.conftest import LOGICAL_DATE
from tests.support.mesh_sandbox import RECIPIENT, SENDER, WORKFLOW
from transfers.connections import parse_connection
from transfers.devkit.gpg import signed_by
from transfers.pipeline import run_flow

pytestmark = pytest.mark.integration


@pytest.fixture
def mesh_world(world, mesh_sandbox):
    """The sample world with flow A's recipient reached by MESH (X26ABC1 -> X26ABC2) instead of SFTP."""
    import yaml

    path = world.settings.config_dir / "agreements" / "mash-referrals.yaml"
    data = yaml.safe_load(path.read_text())
    recipient = data["flows"][0]["to"][0]
    del recipient["sftp"], recipient["path"]
    recipient["mesh"] = {"mailbox": RECIPIENT, "workflow_id": WORKFLOW, "connection": "mesh_out"}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    world.reload()
    world.connections["mesh_out"] = parse_connection("mesh_out", mesh_sandbox.connection_json(SENDER))
    mesh_sandbox.drain(SENDER, RECIPIENT)
    yield world
    mesh_sandbox.drain(SENDER, RECIPIENT)


def _disclosure_messages(world) -> dict[str, str]:
    """File name -> MESH message id, from the disclosure the deliver step recorded."""
    from transfers.ledger.records import Disclosure

    [record] = list(world.settings.open_ledger().records(Disclosure, flow="mash-referrals.A"))
    assert (record.host, record.remote_dir) == (f"mesh:{RECIPIENT}", f"mesh:{WORKFLOW}")
    return {f.remote_path.split("/", 1)[1]: f.remote_path.split("/", 1)[0].removeprefix("mesh:")
            for f in record.files}


def test_a_flow_to_a_mesh_recipient_delivers_signed_encrypted_parts_and_manifest_once(mesh_world, mesh_sandbox,
                                                                                       gpg_partner, gpg_sender, tmp_path):
    results = run_flow(mesh_world.run("mash-referrals.A"), mesh_world.resolvers())

    assert results["status"] == "delivered"
    sent = _disclosure_messages(mesh_world)
    base = f"mash-referrals_A_{LOGICAL_DATE}"
    assert list(sent) == [f"{base}.csv.pgp", f"{base}.manifest.json.asc", f"{base}.manifest.json"]
    with mesh_sandbox.client(RECIPIENT) as client:
        waiting = set(client.list_messages())
        assert set(sent.values()) <= waiting
        part = client.retrieve_message(sent[f"{base}.csv.pgp"])
        assert (part.filename, part.workflow_id, part.sender) == (f"{base}.csv.pgp", WORKFLOW, SENDER)
        (tmp_path / "part.pgp").write_bytes(part.read())
        for message_id in sent.values():
            client.acknowledge_message(message_id)
    _, status = gpg_partner.home.decrypt_with_status(tmp_path / "part.pgp")
    assert signed_by(status) == gpg_sender.fingerprint.upper()

    again = run_flow(mesh_world.run("mash-referrals.A"), mesh_world.resolvers())

    assert again["status"] in ("already-delivered", "delivered")
    with mesh_sandbox.client(RECIPIENT) as client:
        assert not set(client.list_messages()) & {m for m in sent.values()}
        assert not [m for m in client.list_messages() if client.retrieve_message(m).filename.startswith(base)]


def test_a_deliver_retried_after_a_cut_never_posts_a_created_message_again(mesh_world, mesh_sandbox, monkeypatch):
    import requests
    from mesh_client import MeshClient

    from transfers.errors import DeliveryUnavailable

    real = MeshClient.send_chunk
    base = f"mash-referrals_A_{LOGICAL_DATE}"

    def cut_at_the_manifest(self, **kwargs):
        if kwargs.get("filename") == f"{base}.manifest.json":
            raise requests.ConnectionError("connection reset")
        return real(self, **kwargs)

    monkeypatch.setattr(MeshClient, "send_chunk", cut_at_the_manifest)
    with pytest.raises(DeliveryUnavailable, match=f"{base}.manifest.json to MESH mailbox {RECIPIENT}"):
        run_flow(mesh_world.run("mash-referrals.A"), mesh_world.resolvers())
    monkeypatch.setattr(MeshClient, "send_chunk", real)

    assert run_flow(mesh_world.run("mash-referrals.A"), mesh_world.resolvers())["status"] == "delivered"

    sent = _disclosure_messages(mesh_world)
    with mesh_sandbox.client(RECIPIENT) as client:
        mine = {}
        for message_id in client.list_messages():
            name = client.retrieve_message(message_id).filename
            if name.startswith(base):
                mine.setdefault(name, []).append(message_id)
                client.acknowledge_message(message_id)
    assert mine == {name: [message_id] for name, message_id in sent.items()}


def test_remote_purge_holds_nothing_of_a_mesh_delivery(mesh_world):
    from transfers.durations import parse_duration
    from transfers.retention.sftp import held

    run_flow(mesh_world.run("mash-referrals.A"), mesh_world.resolvers())
    ref = mesh_world.config.flow("mash-referrals.A")

    with mesh_world.settings.open_ledger() as ledger:
        assert _disclosure_messages(mesh_world)
        assert list(held(ref, ledger, parse_duration("P14D"))) == []


def test_preflight_logs_in_to_the_senders_mesh_mailbox_and_names_a_refused_login(mesh_world, cli):
    import dataclasses

    from tests.integration.test_preflight import rows

    result = cli("validate", "--connect")

    assert "ok" in rows(result.output, "MESH mesh_out")[0] and SENDER in result.output
    assert "SFTP syp_sftp" not in result.output  # flow A's recipient has no SFTP server now

    mesh_world.connections["mesh_out"] = dataclasses.replace(mesh_world.connections["mesh_out"], password="wrong")
    refused = cli("validate", "--connect").output

    assert "FAILED" in rows(refused, "MESH mesh_out")[0]
    assert "403" in refused and "handshake" in refused and "wrong" not in refused
