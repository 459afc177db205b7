"""NHS MESH delivery (``transfers.delivery.mesh``) against NHS England's real mesh-sandbox on 127.0.0.1."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.support.mesh_sandbox import RECIPIENT, SENDER, WORKFLOW
from transfers.agreement.flow import MeshRoute
from transfers.connections import parse_connection
from transfers.delivery.mesh import JsonSentBook, MeshAccount, send_file
from transfers.devkit.gpg import signed_by
from transfers.errors import DeliveryRefused, DeliveryUnavailable

pytestmark = pytest.mark.integration

ROUTE = MeshRoute(mailbox=RECIPIENT, workflow_id=WORKFLOW, connection="mesh_out")


def _sender(mesh_sandbox):
    return MeshAccount.from_connection(parse_connection("mesh_out", mesh_sandbox.connection_json(SENDER))).client()


def _inbox(mesh_sandbox, local_id: str) -> list[tuple[str, str | None, bytes]]:
    """(message id, file name, bytes) of the recipient's messages with ``local_id``; acknowledged after reading."""
    found = []
    with mesh_sandbox.client(RECIPIENT) as client:
        for message_id in client.list_messages():
            message = client.retrieve_message(message_id)
            if message.local_id == local_id:
                found.append((message_id, message.filename, message.read()))
                client.acknowledge_message(message_id)
    return found


def _sealed(gpg_partner, gpg_sender, tmp_path: Path, size: int) -> Path:
    """A file signed by the sender and encrypted to the partner, as the encrypt step makes them."""
    plain = tmp_path / "part.csv"
    plain.write_bytes(os.urandom(size // 2).hex().encode())
    out = tmp_path / "part.csv.gpg"
    gpg_partner.home.run("--batch", "--yes", "--sign", "--local-user", gpg_sender.fingerprint, "--encrypt",
                         "--recipient", gpg_partner.fingerprint, "--output", str(out), str(plain))
    return out


def test_a_sealed_part_arrives_in_chunks_and_decrypts_with_the_senders_good_signature(
        mesh_sandbox, gpg_partner, gpg_sender, tmp_path):
    sealed = _sealed(gpg_partner, gpg_sender, tmp_path, 5000)
    local_id = f"test:{uuid.uuid4()}"

    with _sender(mesh_sandbox) as client:
        sent = send_file(client, JsonSentBook(tmp_path / "sent.json"), ROUTE, sealed, sealed.name,
                         local_id=local_id, chunk_size=2048)

    assert sent.status == "sent" and sent.chunks == -(-sealed.stat().st_size // 2048) >= 2
    [(message_id, name, data)] = _inbox(mesh_sandbox, local_id)
    assert (message_id, name, data) == (sent.message_id, sealed.name, sealed.read_bytes())
    (tmp_path / "downloaded.gpg").write_bytes(data)
    _, status = gpg_partner.home.decrypt_with_status(tmp_path / "downloaded.gpg")
    assert signed_by(status) == gpg_sender.fingerprint.upper()


def test_a_retry_after_the_message_was_created_never_posts_a_second_one(mesh_sandbox, tmp_path):
    part = tmp_path / "part.gpg"
    part.write_bytes(os.urandom(3000))
    book, local_id = JsonSentBook(tmp_path / "sent.json"), f"test:{uuid.uuid4()}"
    with _sender(mesh_sandbox) as client:
        first = send_file(client, book, ROUTE, part, part.name, local_id=local_id, chunk_size=1024)
        again = send_file(client, book, ROUTE, part, part.name, local_id=local_id, chunk_size=1024)

    assert (first.status, again.status, again.message_id) == ("sent", "already-sent", first.message_id)
    assert [m[0] for m in _inbox(mesh_sandbox, local_id)] == [first.message_id]


def test_a_dropped_chunk_is_retried_into_the_same_message(mesh_sandbox, tmp_path):
    import requests

    part = tmp_path / "part.gpg"
    part.write_bytes(os.urandom(3000))
    book, local_id = JsonSentBook(tmp_path / "sent.json"), f"test:{uuid.uuid4()}"
    with _sender(mesh_sandbox) as client:
        real = client.send_chunk

        def drop_chunk_two(**kwargs):
            if kwargs["chunk_num"] == 2:
                raise requests.ConnectionError("connection reset")
            return real(**kwargs)

        client.send_chunk = drop_chunk_two
        with pytest.raises(DeliveryUnavailable, match=f"chunk 2 of 3 of part.gpg to MESH mailbox {RECIPIENT}"):
            send_file(client, book, ROUTE, part, part.name, local_id=local_id, chunk_size=1024)
        created = book.message_id(part.name)
        assert created is not None and client.track_message(created)["status"] == "uploading"
        client.send_chunk = real

        retried = send_file(client, book, ROUTE, part, part.name, local_id=local_id, chunk_size=1024)

    assert (retried.status, retried.message_id) == ("continued", created)
    assert _inbox(mesh_sandbox, local_id) == [(created, part.name, part.read_bytes())]


def test_an_unknown_recipient_mailbox_is_refused_naming_file_and_mailbox(mesh_sandbox, tmp_path):
    part = tmp_path / "part.gpg"
    part.write_bytes(b"x" * 10)
    route = MeshRoute(mailbox="X26NOSUCH", workflow_id=WORKFLOW, connection="mesh_out")
    book = JsonSentBook(tmp_path / "sent.json")

    with _sender(mesh_sandbox) as client, pytest.raises(DeliveryRefused) as raised:
        send_file(client, book, route, part, part.name, local_id="x")

    assert "part.gpg to MESH mailbox X26NOSUCH" in str(raised.value)
    assert "password" not in str(raised.value) and book.message_id(part.name) is None
