"""Signed documents a recipient returns into ``<remote_dir>/receipts/``, read by the sender over SFTP.

Receipts (:mod:`transfers.acknowledge`) and destruction certificates (:mod:`transfers.destruction`)
travel the same way: the recipient writes ``<name>.asc`` then ``<name>`` into the ``receipts/``
folder of the inbox directory the delivery went to, and the sender reads both over the SFTP
connection it delivered with (its host key pinned, as for the delivery).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from transfers.receipt import RECEIPTS_DIR, SIGNATURE_SUFFIX

if TYPE_CHECKING:
    from datetime import datetime

    from transfers.agreement import Config, Recipient
    from transfers.connections import ConnInfo
    from transfers.crypto import SigningKey
    from transfers.delivery import SftpSession
    from transfers.ledger.records import Disclosure
    from transfers.settings import Settings

__all__ = ["MAX_DOCUMENT_BYTES", "partner_signing_key", "read_signed", "returns_dir", "returns_session"]

#: A returned document is a small JSON file; anything larger is not read (a full disk is not our receipt).
MAX_DOCUMENT_BYTES = 1024 * 1024


def returns_dir(disclosure: Disclosure, recipient: Recipient) -> str:
    """``<remote_dir>/receipts`` of the directory this delivery went to (as recorded, not as the agreement
    points today)."""
    from transfers.delivery.target import check_path

    remote_dir = check_path(disclosure.remote_dir or recipient.path, "remote_dir")
    return RECEIPTS_DIR if remote_dir == "." else posixpath.join(remote_dir, RECEIPTS_DIR)


@contextmanager
def returns_session(settings: Settings, connection: Callable[[str], ConnInfo], recipient: Recipient,
                    session: SftpSession | None = None) -> Iterator[SftpSession]:
    """``session`` when given (tests pass a fake one), else one opened to ``recipient``'s server with its
    connection, host key pinned, as deliver does (closed on leaving)."""
    if session is not None:
        yield session
        return
    from transfers.delivery import SftpTarget, open_sftp

    target = SftpTarget.from_connection(connection(recipient.sftp_connection), recipient, settings=settings)
    with open_sftp(target) as opened:
        yield opened


def read_signed(session: SftpSession, where: str, name: str, *, what: str,
                error: Callable[[str], Exception]) -> tuple[bytes | None, bytes | None]:
    """The document ``<where>/<name>`` and its signature ``<name>.asc`` (``None`` for one not there).

    The signature is read second, so a document written between the two reads is seen with the
    signature the recipient wrote before it.

    Raises:
        ``error``: A file larger than ``MAX_DOCUMENT_BYTES`` (``what`` names the kind of document).
        DeliveryUnavailable, DeliveryRefused: The SFTP server, as for deliver.
    """
    document = _read(session, posixpath.join(where, name), what, error)
    signature = (_read(session, posixpath.join(where, name + SIGNATURE_SUFFIX), what, error)
                 if document is not None else None)
    return document, signature


def _read(session: SftpSession, path: str, what: str, error: Callable[[str], Exception]) -> bytes | None:
    from transfers.delivery.session import sftp_call, stat_or_none

    with sftp_call(session, f"reading {path}"):
        attrs = stat_or_none(session.sftp, path)
        if attrs is None:
            return None
        if (attrs.st_size or 0) > MAX_DOCUMENT_BYTES:
            raise error(f"sftp://{session.target.address}/{path}: {attrs.st_size} bytes, larger than any {what} "
                        f"({MAX_DOCUMENT_BYTES}); not read")
        chunks, size = [], 0
        with session.sftp.open(path, "rb") as fh:
            while chunk := fh.read(32 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise error(f"sftp://{session.target.address}/{path}: larger than any {what} "
                                f"({MAX_DOCUMENT_BYTES} bytes); not read")
        return b"".join(chunks)


def partner_signing_key(settings: Settings, config: Config, partner: str, now: datetime | None) -> SigningKey:
    """``partner``'s pinned signing key (``signing_fingerprint`` in protocol.yaml, public key in
    ``keys/<partner>.asc``), to verify what it returns.

    Raises:
        KeyRefused: No fingerprint pinned, the key file is missing, or the key fails a check (expired, revoked).
    """
    from datetime import timedelta

    from transfers.crypto import load_signing_key
    from transfers.errors import KeyRefused

    signatory = config.protocol.signatory(partner)
    pinned = signatory.signing_fingerprint if signatory else None
    if not pinned:
        raise KeyRefused(f"{partner}: no signing_fingerprint in protocol.yaml; its receipts, destruction "
                         "certificates and notice confirmations cannot be verified "
                         "(pin the fingerprint of its OpenPGP signing key)")
    # No margin: a key about to expire still verifies what it signed; an expired or revoked one does not.
    return load_signing_key(settings.keys / f"{partner}.asc", pinned, now=now, margin=timedelta(0))


def mismatch(document: Any, expected: Mapping[str, Any], whose: str) -> str | None:
    """The first of ``expected``'s fields the returned ``document`` gives otherwise, said plainly; else ``None``.

    ``whose`` names what the values belong to ("the delivery's", "the notice's").
    """
    for name, value in expected.items():
        if getattr(document, name) != value:
            return f"{name} is {getattr(document, name)!r}, {whose} is {value!r}"
    return None


def signer_mismatch(signer_fingerprint: str, key: SigningKey, partner: str) -> str | None:
    """Whether a returned document names, as its signer, the partner's pinned key (primary or signing subkey)."""
    from transfers.crypto import normalise_fingerprint

    try:
        signer = normalise_fingerprint(signer_fingerprint)
    except ValueError:
        signer = signer_fingerprint
    if signer in (key.fingerprint, key.signing_fingerprint):
        return None
    return f"signer_fingerprint {signer_fingerprint!r} is not {partner}'s pinned key {key.fingerprint}"
