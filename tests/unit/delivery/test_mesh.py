"""The MESH transport's own parts (``transfers/delivery/mesh.py``) that need no server: its connection and book."""

from __future__ import annotations

import json

import pytest

from transfers.connections import parse_connection
from transfers.delivery.mesh import JsonSentBook, MeshAccount, MeshSent
from transfers.errors import DeliveryRefused


def _conn(**fields):
    return parse_connection("mesh_out", json.dumps({"conn_type": "mesh", **fields}))


def test_a_connection_gives_the_mailbox_url_and_tls_files():
    account = MeshAccount.from_connection(_conn(host="mesh-sync.spineservices.nhs.uk", login="X26ABC1",
                                                password="pw", extra={"shared_key": "k", "cert": "c.pem",
                                                                      "key": "k.pem", "ca": "ca.pem"}))

    assert (account.url, account.mailbox, account.shared_key) == ("https://mesh-sync.spineservices.nhs.uk",
                                                                  "X26ABC1", b"k")
    assert (account.cert, account.ca) == (("c.pem", "k.pem"), "ca.pem")
    assert "pw" not in repr(account) and "shared_key" not in repr(account)


def test_a_connection_missing_fields_is_refused_naming_them_not_their_values():
    with pytest.raises(DeliveryRefused, match="'mesh_out' lacks password, extra.shared_key") as raised:
        MeshAccount.from_connection(_conn(host="http://127.0.0.1:1", login="X26ABC1"))

    assert "127.0.0.1" not in str(raised.value)


def test_the_book_keeps_each_files_message_id_across_instances(tmp_path):
    JsonSentBook(tmp_path / "sent.json").created("a.gpg", "M1")
    JsonSentBook(tmp_path / "sent.json").created("b.gpg", "M2")

    book = JsonSentBook(tmp_path / "sent.json")
    assert (book.message_id("a.gpg"), book.message_id("b.gpg"), book.message_id("c.gpg")) == ("M1", "M2", None)


def test_the_ledger_names_a_message_by_its_id_and_file():
    assert MeshSent("a.gpg", "M1", 1, "0" * 64, 1, "sent").remote_path == "mesh:M1/a.gpg"
