"""An NHS MESH inbox as a recipient's third source (beside the local inbox and the SFTP mailbox).

A recipient entry with ``mesh:`` is received from the party's own MESH mailbox: the connection the entry
names holds, in *this* deployment, this party's own mailbox (its ``login`` must be the entry's
``mailbox``; fields as ``transfers.delivery.mesh.MeshAccount``). It offers the SFTP mailbox's steps
(``transfers.receive.mailbox.Mailbox``), so ``transfers.receive.run`` keeps one code path:

- ``fetch``: once the delivery's manifest and its ``.asc`` have arrived as messages of the route's
  workflow (the sender sends them last), download them and the ``<base>*.pgp`` parts into the private
  cache (``HomeLayout.mailbox_cache``, 0700, files 0600, atomically); else ``DeliveryPending``;
- ``return_receipt``: send the signed receipt (``.asc`` then ``.json``) back as MESH messages to the
  delivery's sending mailbox under ``receipt_workflow_id`` when the route names one (else the receipt
  stays recorded in our ledger only); a message already sent for it is never sent again;
- ``collect``: acknowledge the delivery's messages in MESH (which removes them from the inbox) once the
  receive is recorded.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.delivery.mesh import JsonSentBook, MeshAccount, mesh_call, send_file
from transfers.errors import ConfigError, DeliveryPending
from transfers.files import atomic_file, private_dir
from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX, SIGNATURE_SUFFIX, base_name, manifest_name

if TYPE_CHECKING:
    from transfers.agreement import FlowRef, Recipient
    from transfers.agreement.flow import MeshRoute
    from transfers.connections import ConnLookup
    from transfers.settings import Settings

log = get_logger(__name__)

_ENDS = (MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIGNATURE_SUFFIX, ".pgp")


def _ours(name: str | None, base: str) -> bool:
    # A name with a path separator never picks a local path.
    return bool(name) and str(name).startswith(base + ".") and str(name).endswith(_ENDS) \
        and "/" not in str(name) and "\\" not in str(name)


@dataclass
class MeshInbox:
    """One flow's delivery in this party's MESH inbox, and the private cache it is received in."""

    account: MeshAccount
    route: MeshRoute
    base: str
    cache: Path
    messages: dict[str, list[str]] = field(default_factory=dict)  # file name -> its MESH message ids, once fetched
    sender_mailbox: str | None = None

    @classmethod
    def for_flow(cls, settings: Settings, connection: ConnLookup, recipient: Recipient, ref: FlowRef,
                 day: date) -> MeshInbox:
        """Raises ``ConfigError`` when the entry has no ``mesh`` or the connection is another mailbox."""
        route = recipient.mesh
        if route is None:
            raise ConfigError(f"recipient {recipient.partner!r} of {ref.key} is not reached by MESH")
        account = MeshAccount.from_connection(connection(route.connection))
        if account.mailbox.upper() != route.mailbox.upper():
            raise ConfigError(f"MESH connection {route.connection!r} is mailbox {account.mailbox}, but flow {ref.key} "
                              f"delivers to {route.mailbox}: set this deployment's connection to its own mailbox")
        return cls(account, route, base_name(ref.agreement.id, ref.flow.id, day.isoformat()),
                   settings.layout.mailbox_cache(ref.agreement.id, ref.flow.id, day))

    @property
    def _book(self) -> JsonSentBook:
        # Beside the cache, not in it: the cache is removed after each attempt, the book must outlive it.
        return JsonSentBook(self.cache.with_name(f".{self.cache.name}.mesh-receipts.json"))

    def fetch(self) -> list[Path]:
        """Download the delivery's messages into the cache (made afresh); ``DeliveryPending`` if incomplete."""
        where = f"MESH mailbox {self.route.mailbox}"
        with self.account.client() as client:
            ids = mesh_call(f"listing {where}", lambda: client.list_messages(workflow_filter=self.route.workflow_id))
            found: dict[str, tuple[str, str | None]] = {}
            for message_id in ids:
                message = mesh_call(f"reading a message in {where}", lambda m=message_id: client.retrieve_message(m))
                with message:
                    if _ours(message.filename, self.base):
                        # The first listed of a name is received; every one of them is acknowledged on collect.
                        found.setdefault(str(message.filename), (message_id, message.sender))
                        self.messages.setdefault(str(message.filename), []).append(message_id)
            manifest = manifest_name(self.base)
            if manifest not in found or manifest + SIGNATURE_SUFFIX not in found:
                raise DeliveryPending(f"{where}: no complete delivery {self.base} yet ({manifest} and its "
                                      f"{SIGNATURE_SUFFIX} signature are sent last)")
            shutil.rmtree(self.cache, ignore_errors=True)
            private_dir(self.cache)
            fetched = []
            for name, (message_id, sender) in sorted(found.items()):
                self.sender_mailbox = self.sender_mailbox or sender
                message = mesh_call(f"downloading {name} from {where}", lambda m=message_id: client.retrieve_message(m))
                with message, atomic_file(self.cache / name) as out:
                    while chunk := message.read(1024 * 1024):
                        out.write(chunk)
                fetched.append(self.cache / name)
        log.info("delivery fetched from MESH", mailbox=self.route.mailbox, files=len(fetched))
        return fetched

    def return_receipt(self, receipt: Path) -> None:
        """Send the receipt (``.asc`` then ``.json``) to the sending mailbox, once, when a receipt workflow is set."""
        workflow = self.route.receipt_workflow_id
        if workflow is None or self.sender_mailbox is None:
            log.info("receipt kept in the ledger only (no MESH receipt workflow)", mailbox=self.route.mailbox)
            return
        from transfers.agreement.flow import MeshRoute

        back = MeshRoute(mailbox=self.sender_mailbox, workflow_id=workflow, connection=self.route.connection)
        with self.account.client() as client:
            for local in (receipt.with_name(receipt.name + SIGNATURE_SUFFIX), receipt):
                send_file(client, self._book, back, local, local.name, local_id=local.name)

    def collect(self) -> list[str]:
        """Acknowledge the delivery's messages (MESH then removes them); returns the file names."""
        if not self.messages:
            try:
                self.fetch()
            except DeliveryPending:
                pass
            shutil.rmtree(self.cache, ignore_errors=True)
        with self.account.client() as client:
            for name, message_ids in sorted(self.messages.items()):
                for message_id in message_ids:
                    mesh_call(f"acknowledging {name} in MESH mailbox {self.route.mailbox}",
                          lambda m=message_id: client.acknowledge_message(m))
        removed, self.messages = sorted(self.messages), {}
        return removed

    @contextmanager
    def fetched(self) -> Iterator[DeliveryPending | None]:
        """As ``Mailbox.fetched``: yields ``DeliveryPending`` if not there yet; the cache goes when the block ends."""
        from transfers.receive.mailbox import fetched_into

        with fetched_into(self.fetch, self.cache) as pending:
            yield pending
