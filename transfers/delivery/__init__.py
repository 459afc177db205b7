"""Delivery step: upload encrypted files to a partner's SFTP server, host key pinned.

Modules: ``target`` (``SftpTarget`` and the rules for remote paths),
``hostkeys`` (pinned host keys, several per server with ``until`` dates for a
rotation; what a server offers, for ``transfers hostkey show``),
``session`` (``open_sftp``: host-key pinning, timeouts, mapping library errors;
``SftpOps``, the SFTP calls the rules above it use), ``upload``
(``deliver_file``: temporary name, read-back SHA-256, rename that never
replaces, reconcile, cleanup; or, per the recipient's ``upload`` / ``verify``
modes, the final name written directly, a size check, or none but the signed
receipt), ``probe`` (preflight's probe of a remote directory in those modes) and
``remote`` (list and remove delivered files, for remote purge).

Errors map to the shared hierarchy: ``HostKeyMismatch`` (key not pinned, or
its pin ended), ``DeliveryRefused`` (login or path refused), ``DeliveryConflict`` (a
different file under the final name), ``DeliveryUnavailable`` (server down,
connection dropped, upload cut short: retriable). Messages name the server
and path, never a password or key.
"""

from transfers.delivery.hostkeys import HostKeyPin
from transfers.delivery.remote import RemoteFile, discard_partial, list_remote, remove_remote
from transfers.delivery.session import DISABLED_ALGORITHMS, SftpFile, SftpOps, SftpSession, open_sftp
from transfers.delivery.target import DEFAULT_TIMEOUT, SftpTarget
from transfers.delivery.upload import Receipt, deliver_file

__all__ = [
    "DEFAULT_TIMEOUT",
    "DISABLED_ALGORITHMS",
    "HostKeyPin",
    "Receipt",
    "RemoteFile",
    "SftpFile",
    "SftpOps",
    "SftpSession",
    "SftpTarget",
    "deliver_file",
    "discard_partial",
    "list_remote",
    "open_sftp",
    "remove_remote",
]
