"""The MESH branch of the deliver step: send a sealed outbox to a recipient's NHS MESH mailbox.

Same files and order as over SFTP (data parts, then the manifest's signature, the manifest last), each
as one MESH message (``transfers.delivery.mesh``). The id of each message MESH creates is kept in
``.mesh-sent.json`` in the outbox from the moment MESH returns it, so a retry of the step continues or
recognises that message and never posts a second one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transfers.delivery.mesh import JsonSentBook, MeshAccount, MeshSent, send_file
from transfers.ledger.records import RemoteFile

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.flowrun import Resolvers

SENT_BOOK = ".mesh-sent.json"


def send_outbox(resolvers: Resolvers, recipient: Recipient, outbox: Path, names: list[str]) -> list[MeshSent]:
    """Send ``names`` (in this order) from ``outbox`` to ``recipient.mesh``; see ``transfers.delivery.mesh.send_file``."""
    route = recipient.mesh
    if route is None:
        raise ValueError(f"recipient {recipient.partner!r} is not reached by MESH")
    account = MeshAccount.from_connection(resolvers.connection(route.connection))
    book = JsonSentBook(outbox / SENT_BOOK)
    with account.client() as client:
        return [send_file(client, book, route, outbox / name, name, local_id=name) for name in names]


def ledger_files(sent: list[MeshSent]) -> tuple[RemoteFile, ...]:
    """The disclosure's files: ``mesh:<message id>/<name>``; a message MESH already held counts as reconciled."""
    return tuple(RemoteFile(s.remote_path, s.size, s.sha256, "reconciled" if s.status == "already-sent" else "delivered")
                 for s in sent)
