"""A remote SFTP mailbox as a recipient's inbox: fetch a delivery, return its receipt, collect it.

A deployment with ``TRANSFERS_MAILBOX`` (a connection id, host keys pinned in ``extra.host_key(s)``)
receives from a directory on an SFTP server it polls (a hosted mailbox both partners reach) instead
of a local inbox; the sender delivers there as it always does, and the flow's ``path`` is that
directory. ``transfers.receive.run`` then works on a private local copy (``HomeLayout.mailbox_cache``)
with one code path:

- ``fetch``: once ``<base>.manifest.json`` and its ``.asc`` are both on the mailbox (the sender
  writes them last), download them and the ``<base>*.pgp`` parts (encrypted files only, each
  in chunks and atomically) into the cache, with our receipt for the delivery if one is already
  there (so a retry reuses it byte for byte, and an acceptance is never replaced); else
  ``DeliveryPending``;
- ``return_receipt``: upload the receipt's ``.asc`` then the ``.json`` into ``<path>/receipts/``
  (temporary name, read back, rename: ``deliver_file``), replacing a different receipt of ours;
- ``collect``: remove the delivery's files from the mailbox once it is recorded (loaded, or
  rejected with the quarantine keeping the local copy).

Every session is opened by ``open_sftp`` (only a pinned host key, bounded waits), one per step,
so no connection idles through a long load. The cache is removed when the receive ends.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.delivery.readahead import read_chunks
from transfers.delivery.remote import list_remote, remove_remote
from transfers.delivery.session import SftpSession, open_sftp, sftp_call
from transfers.delivery.target import SftpTarget
from transfers.delivery.upload import deliver_file
from transfers.errors import ConfigError, DeliveryConflict, DeliveryPending
from transfers.files import atomic_file, private_dir
from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX, RECEIPTS_DIR, SIGNATURE_SUFFIX, base_name, manifest_name, receipt_name

if TYPE_CHECKING:
    from transfers.agreement import FlowRef, Recipient
    from transfers.connections import ConnLookup
    from transfers.settings import Settings

__all__ = ["Mailbox", "collect", "fetch", "probe", "return_receipt", "target_for"]

log = get_logger(__name__)

Opener = Callable[[SftpTarget], AbstractContextManager[SftpSession]]


def _join(directory: str, name: str) -> str:
    return name if directory == "." else posixpath.join(directory, name)


def _delivery_names(names: list[str], base: str) -> list[str]:
    """The delivery's encrypted files among ``names``: its manifest, the manifest's signature, its parts."""
    ends = (MANIFEST_SUFFIX, MANIFEST_SUFFIX + SIGNATURE_SUFFIX, ".pgp")
    # A name with a "/" is no plain file name a server should list; never let one pick a local path.
    return [n for n in names if n.startswith(base + ".") and n.endswith(ends) and "/" not in n and "\\" not in n]


def _download(session: SftpSession, remote: str, local: Path) -> None:
    """Copy one remote file to ``local`` (0600), in chunks, appearing whole or not at all."""
    with sftp_call(session, f"downloading {remote}"), session.sftp.open(remote, "rb") as fh, \
            atomic_file(local) as out:
        for chunk in read_chunks(fh):  # many reads in flight: one round trip per window, not per chunk
            out.write(chunk)
            session.progress()


def fetch(session: SftpSession, base: str, cache: Path) -> list[Path]:
    """Download delivery ``base`` from the session's directory into ``cache`` (made afresh, 0700).

    Our receipt for it, if ``<dir>/receipts/`` holds a complete one (``.json`` and ``.asc``), is
    downloaded too, into ``cache/receipts/``.

    Returns:
        The local copies of the delivery's files (manifest, its signature, the ``.pgp`` parts).

    Raises:
        DeliveryPending: The manifest or its signature is not on the mailbox yet (nothing is downloaded).
        HostKeyMismatch, DeliveryRefused, DeliveryUnavailable: As ``open_sftp`` / ``sftp_call``.
    """
    directory = session.target.remote_dir
    names = [f.name for f in list_remote(session, directory)]
    manifest = manifest_name(base)
    if manifest not in names or manifest + SIGNATURE_SUFFIX not in names:
        raise DeliveryPending(f"mailbox sftp://{session.target.address}/{directory}: no complete delivery {base} "
                              f"yet ({manifest} and its {SIGNATURE_SUFFIX} signature are written last)")
    # Afresh: what a killed attempt left must not pass for part of this delivery.
    shutil.rmtree(cache, ignore_errors=True)
    private_dir(cache)
    fetched = []
    for name in _delivery_names(names, base):
        _download(session, _join(directory, name), cache / name)
        fetched.append(cache / name)
    receipts = _join(directory, RECEIPTS_DIR)
    held = {f.name for f in list_remote(session, receipts)}
    receipt = receipt_name(base)
    if receipt in held and receipt + SIGNATURE_SUFFIX in held:
        private_dir(cache / RECEIPTS_DIR)
        for name in (receipt + SIGNATURE_SUFFIX, receipt):
            _download(session, _join(receipts, name), cache / RECEIPTS_DIR / name)
    log.info("delivery fetched from the mailbox", mailbox=session.target.address, files=len(fetched))
    return fetched


def return_receipt(session: SftpSession, receipt: Path) -> None:
    """Upload ``receipt`` (its ``.asc`` first, then the ``.json``) into ``<dir>/receipts/`` on the mailbox.

    An identical copy already there is left as it is (a retry); a different one of ours (a rejection
    replaced, or half a receipt an attempt cut short left) is replaced.

    Raises:
        DeliveryRefused, DeliveryUnavailable: As ``deliver_file``.
    """
    remote_dir = _join(session.target.remote_dir, RECEIPTS_DIR)
    there = SftpSession(dataclasses.replace(session.target, remote_dir=remote_dir), session.client, session.sftp,
                        session.watchdog)
    for local in (receipt.with_name(receipt.name + SIGNATURE_SUFFIX), receipt):
        try:
            deliver_file(there, local, local.name)
        except DeliveryConflict:
            # Only we write receipts there: the one in our cache is the one to keep.
            remove_remote(there, _join(remote_dir, local.name))
            deliver_file(there, local, local.name)


def collect(session: SftpSession, base: str) -> list[str]:
    """Remove delivery ``base``'s files (manifest, its signature, the ``.pgp`` parts) from the mailbox.

    Returns the names removed. Uploads still under the sender's hidden temporary names are left alone.
    """
    directory = session.target.remote_dir
    removed = []
    for name in _delivery_names([f.name for f in list_remote(session, directory)], base):
        if remove_remote(session, _join(directory, name)):
            removed.append(name)
    return removed


def probe(session: SftpSession) -> str:
    """What preflight says of the flow's directory on the mailbox, after listing it."""
    directory = session.target.remote_dir
    with sftp_call(session, f"listing {directory}"):
        try:
            entries = session.sftp.listdir_attr(directory)
        except FileNotFoundError:
            return f"{directory!r} does not exist yet (the sender's first delivery makes it)"
    return f"{directory!r} is listable ({len(entries)} entries)"


@dataclass(frozen=True)
class Mailbox:
    """One flow's directory on the remote mailbox, and the private local cache its delivery is received in.

    Each step opens its own session with ``opener`` (``open_sftp``; a fake in unit tests).
    """

    target: SftpTarget
    base: str
    cache: Path
    opener: Opener = field(default=open_sftp, repr=False, compare=False)

    @classmethod
    def for_flow(cls, settings: Settings, connection: ConnLookup, recipient: Recipient, ref: FlowRef,
                 day: date) -> Mailbox:
        """The mailbox ``settings.mailbox`` names, at ``recipient.path``, for ``ref``'s delivery of ``day``.

        Raises: as ``target_for``.
        """
        return cls(target_for(settings, connection, recipient), base_name(ref.agreement.id, ref.flow.id, day.isoformat()),
                   settings.layout.mailbox_cache(ref.agreement.id, ref.flow.id, day))

    def fetch(self) -> list[Path]:
        with self.opener(self.target) as session:
            return fetch(session, self.base, self.cache)

    def return_receipt(self, receipt: Path) -> None:
        with self.opener(self.target) as session:
            return_receipt(session, receipt)

    def collect(self) -> list[str]:
        with self.opener(self.target) as session:
            return collect(session, self.base)

    @contextmanager
    def fetched(self) -> Iterator[DeliveryPending | None]:
        """Fetch the delivery into the cache; yields ``DeliveryPending`` if it is not there yet, else ``None``.

        The receive decides what "pending" means (an already recorded delivery is no longer on the
        mailbox). The cache is removed when the block ends, however it ends.
        """
        with fetched_into(self.fetch, self.cache) as pending:
            yield pending


@contextmanager
def fetched_into(fetch: Callable[[], object], cache: Path) -> Iterator[DeliveryPending | None]:
    """Run ``fetch`` into ``cache``; yield its ``DeliveryPending`` (not there yet) or ``None``; then remove the cache.

    Shared by every remote inbox (an SFTP mailbox, a MESH inbox): what was fetched (encrypted files only)
    never outlives the receive, however it ends.
    """
    try:
        pending = None
        try:
            fetch()
        except DeliveryPending as exc:
            pending = exc
        yield pending
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def target_for(settings: Settings, connection: ConnLookup, recipient: Recipient) -> SftpTarget:
    """The mailbox's pinned target at the flow's ``path`` (timeouts as delivery's).

    Raises:
        ConfigError: No mailbox is set, the connection pins no host key, or a field is not usable.
        SecretMissing: The connection id does not resolve.
    """
    if not settings.mailbox:
        raise ConfigError("TRANSFERS_MAILBOX is not set: this deployment receives into a local inbox")
    # The recipient entry is ours here: its path is the directory on the mailbox, its sftp_timeout (if
    # any) the same server's; from_connection refuses a connection without a pinned host key.
    return SftpTarget.from_connection(connection(settings.mailbox), recipient, settings=settings)
