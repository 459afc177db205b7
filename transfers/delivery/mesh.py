"""Deliver files to a recipient's NHS MESH mailbox with NHS England's ``mesh-client``, never posting one twice.

A MESH message is created by its first chunk's POST (MESH gives it a message id); later chunks are
posted to that id. MESH's rule is that a created message is never posted again: a retry continues
it. So each file's message id is written to a :class:`SentBook` as soon as MESH returns it, before
any further chunk; a retry finds it there and asks MESH's tracking API what became of it
(``accepted``/``acknowledged``: done; ``uploading``: chunks 2..N are posted again to the same id,
which MESH accepts) instead of creating a second message.

Files are split into chunks of at most ``chunk_size`` bytes (MESH's limit is 100 MB a chunk;
mesh-client's default, 75 MiB, is used). Each message carries the recipient's workflow id, the file
name and a ``local_id`` that names the delivery and file. Messages name the mailbox and file, never
a password or the shared key.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from transfers.errors import DeliveryRefused, DeliveryUnavailable

if TYPE_CHECKING:
    from mesh_client import MeshClient

    from transfers.agreement.flow import MeshRoute
    from transfers.connections import ConnInfo

CHUNK_SIZE = 75 * 1024 * 1024  # mesh-client's default; MESH takes up to 100 MB a chunk
_DONE = ("accepted", "acknowledged")  # tracking statuses of a message whose every chunk arrived


@dataclass(frozen=True)
class MeshAccount:
    """The sender's (or recipient's) own MESH mailbox, from an Airflow connection.

    Connection fields: ``host`` = base URL (``https://...``, or ``http://127.0.0.1:PORT`` for mesh-sandbox),
    ``login`` = mailbox id, ``password`` = mailbox password, ``extra.shared_key`` = the environment's
    shared HMAC key, and for the real MESH ``extra.cert`` / ``extra.key`` (client certificate and its
    key, file paths) and ``extra.ca`` (CA bundle path; default mesh-client's bundle for NHS endpoints).
    """

    url: str
    mailbox: str
    password: str = field(repr=False)
    shared_key: bytes = field(repr=False)
    cert: tuple[str, str] | None = None
    ca: str | None = None

    @classmethod
    def from_connection(cls, conn: ConnInfo) -> MeshAccount:
        """Read a MESH connection; ``DeliveryRefused`` names the connection and the missing field."""
        extra = dict(conn.extra)
        missing = [name for name, value in (("host", conn.host), ("login", conn.login), ("password", conn.password),
                                            ("extra.shared_key", extra.get("shared_key"))) if not value]
        if missing:
            raise DeliveryRefused(f"MESH connection {conn.conn_id!r} lacks {', '.join(missing)}")
        host = str(conn.host)
        url = host if "://" in host else f"https://{host}"
        if conn.port and "://" not in host:
            url = f"{url}:{conn.port}"
        cert = (str(extra["cert"]), str(extra["key"])) if extra.get("cert") and extra.get("key") else None
        return cls(url=url, mailbox=str(conn.login), password=str(conn.password),
                   shared_key=str(extra["shared_key"]).encode(), cert=cert,
                   ca=str(extra["ca"]) if extra.get("ca") else None)

    def client(self) -> MeshClient:
        """An open mesh-client session (close it, or use it in a ``with`` block)."""
        from mesh_client import MeshClient

        kwargs: dict[str, Any] = {"shared_key": self.shared_key, "application_name": "isp-transfers"}
        if self.cert is not None:
            kwargs["cert"] = self.cert
        if self.ca is not None:
            kwargs["verify"] = self.ca
        return MeshClient(self.url, self.mailbox, self.password, **kwargs)


class SentBook(Protocol):
    """Where each file's MESH message id is kept from the moment MESH creates the message."""

    def message_id(self, name: str) -> str | None: ...

    def created(self, name: str, message_id: str) -> None: ...


class JsonSentBook:
    """A :class:`SentBook` in a small JSON file (message ids and file names only), replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def message_id(self, name: str) -> str | None:
        return self._read().get(name)

    def created(self, name: str, message_id: str) -> None:
        book = self._read() | {name: message_id}
        temp = self.path.with_name(f".{self.path.name}.tmp")
        with temp.open("w") as fh:
            json.dump(book, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, self.path)


@dataclass(frozen=True)
class MeshSent:
    """One file as a MESH message: ``sent`` now, ``continued`` (a cut message finished) or ``already-sent``."""

    name: str
    message_id: str
    size: int
    sha256: str
    chunks: int
    status: Literal["sent", "continued", "already-sent"]

    @property
    def remote_path(self) -> str:
        """How the ledger names it: ``mesh:<MESH message id>/<file name>``."""
        return f"mesh:{self.message_id}/{self.name}"


def _chunks(path: Path, chunk_size: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            yield chunk


def _digest(path: Path) -> tuple[int, str]:
    sha, size = hashlib.sha256(), 0
    for chunk in _chunks(path, 1024 * 1024):
        sha.update(chunk)
        size += len(chunk)
    return size, sha.hexdigest()


def mesh_call(what: str, action: Any) -> Any:
    """Run one MESH request; map its failures to the shared errors (no secrets in the text)."""
    import requests
    from mesh_client import MeshError

    try:
        return action()
    except MeshError as exc:
        raise DeliveryRefused(f"MESH refused {what}: {exc.args[0] if exc.args else 'error'}") from None
    except requests.HTTPError as exc:
        code = exc.response.status_code if exc.response is not None else 0
        error = DeliveryRefused if code in (400, 401, 403, 404, 417) else DeliveryUnavailable
        raise error(f"MESH answered {code} to {what}") from None
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise DeliveryUnavailable(f"MESH could not be reached for {what}: {type(exc).__name__}") from None


def send_file(client: MeshClient, book: SentBook, route: MeshRoute, path: Path, name: str, *, local_id: str,
              chunk_size: int = CHUNK_SIZE) -> MeshSent:
    """Send ``path`` as one MESH message to ``route.mailbox`` under ``route.workflow_id``, exactly once.

    Raises:
        DeliveryRefused: MESH refused the message (mailbox, workflow, authentication).
        DeliveryUnavailable: MESH could not be reached or a chunk did not arrive: retriable, and the
            retry continues the same message.
    """
    size, sha256 = _digest(path)
    total = max(1, -(-size // chunk_size))
    where = f"{name} to MESH mailbox {route.mailbox}"
    headers: dict[str, Any] = {"workflow_id": route.workflow_id, "filename": name, "local_id": local_id}
    known = book.message_id(name)
    if known is not None:
        tracking = mesh_call(f"tracking {where}", lambda: client.track_message(known))
        if str(tracking.get("status", "")).lower() in _DONE:
            return MeshSent(name, known, size, sha256, total, "already-sent")
        _rest(client, route, path, known, total, chunk_size, where, headers)
        return MeshSent(name, known, size, sha256, total, "continued")
    first = next(_chunks(path, chunk_size), b"")

    def post_first() -> str:
        response = client.send_chunk(recipient=route.mailbox, chunk=first, chunk_num=1, total_chunks=total,
                                     **headers)
        body = response.json() if response.content else {}
        if response.status_code not in (200, 202) or "message_id" not in body:
            raise DeliveryRefused(f"MESH refused {where}: {body.get('errorDescription') or response.status_code}")
        return str(body["message_id"])

    message_id = mesh_call(f"sending {where}", post_first)
    # Recorded before any further chunk: from here on a retry continues this message, never posts anew.
    book.created(name, message_id)
    _rest(client, route, path, message_id, total, chunk_size, where, headers)
    return MeshSent(name, message_id, size, sha256, total, "sent")


def _rest(client: MeshClient, route: MeshRoute, path: Path, message_id: str, total: int, chunk_size: int,
          where: str, headers: dict[str, Any]) -> None:
    """Post chunks 2..total of a created message (again, on a retry: MESH takes a chunk posted twice)."""
    for number, chunk in enumerate(_chunks(path, chunk_size), start=1):
        if number == 1:
            continue

        def post(chunk: bytes = chunk, number: int = number) -> None:
            response = client.send_chunk(recipient=route.mailbox, chunk=chunk, chunk_num=number, total_chunks=total,
                                         message_id=message_id, **headers)
            response.raise_for_status()

        mesh_call(f"chunk {number} of {total} of {where}", post)


def read_returned(account: MeshAccount, route: MeshRoute, name: str) -> tuple[bytes | None, bytes | None, list[str]]:
    """At the sender: the document ``name`` and its ``.asc`` the recipient sent back over MESH.

    Read from our own inbox, messages of ``route.receipt_workflow_id`` from ``route.mailbox`` only.
    Returns (document or None, signature or None, their message ids, to acknowledge once recorded).
    """
    wanted, found, ids = (name, name + ".asc"), {}, []
    where = f"MESH mailbox {account.mailbox}"
    with account.client() as client:
        listed = mesh_call(f"listing {where}", lambda: client.list_messages(workflow_filter=route.receipt_workflow_id))
        for message_id in listed:
            message = mesh_call(f"reading a message in {where}", lambda m=message_id: client.retrieve_message(m))
            with message:
                if message.filename in wanted and str(message.sender or "").upper() == route.mailbox.upper():
                    found[message.filename] = message.read()
                    ids.append(message_id)
    return found.get(name), found.get(name + ".asc"), ids


def acknowledge(account: MeshAccount, message_ids: list[str]) -> None:
    """Acknowledge messages in our own inbox (MESH then removes them)."""
    with account.client() as client:
        for message_id in message_ids:
            mesh_call(f"acknowledging a message in MESH mailbox {account.mailbox}",
                      lambda m=message_id: client.acknowledge_message(m))


def handshake(account: MeshAccount) -> str:
    """Log in to our own MESH mailbox (MESH's handshake); what preflight reports. Raises as ``mesh_call``."""
    with account.client() as client:
        mesh_call(f"the handshake of MESH mailbox {account.mailbox}", client.handshake)
    return f"MESH mailbox {account.mailbox} at {account.url}: login ok"
