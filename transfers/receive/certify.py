"""The recipient certifies each destruction to the data controller: a signed certificate, returned like a receipt.

For every received delivery whose rows are all destroyed (a complete ``Destroyed`` record of place
``received`` in our ledger) and for which no certificate was issued yet, ``issue_certificates``
builds a :class:`~transfers.certificate.DestructionCertificate` (delivery, manifest hash, rows
destroyed, when, under which rule, our ledger head), signs it with our signing key and:

* the controller is another party: writes it into ``receipts/`` of the flow's inbox directory (our
  own SFTP server's; the controller collects it with ``transfers certificates --collect``), or uploads
  it there on our remote mailbox (``TRANSFERS_MAILBOX``);
* the controller is us: records it as certified in our own ledger (nothing travels).

Each issue is a ``certificate-issued`` record, so a certificate is issued once; a retry after a
crash rewrites nothing (an existing complete certificate is kept byte for byte). Run after every
purge by the retention DAG, and by ``transfers certificates --issue``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from transfers.errors import ConfigError, TransferError
from transfers.ledger.records import CertificateIssued, Destroyed, Received, stamp
from transfers.logs import get_logger
from transfers.receipt import RECEIPTS_DIR, sha256_hex

if TYPE_CHECKING:
    from transfers.agreement import Config, FlowRef, Recipient
    from transfers.certificate import DestructionCertificate
    from transfers.crypto import SigningKey
    from transfers.flowrun import Resolvers
    from transfers.ledger import Ledger
    from transfers.settings import Settings

__all__ = ["Issued", "issue_certificates"]

log = get_logger(__name__)


@dataclass(frozen=True)
class Issued:
    """One certificate issued (or one that could not be)."""

    delivery_id: str
    controller: str
    sent_to: str  # inbox | mailbox | self | "" when it failed
    certificate_sha256: str | None
    error: str = ""


def issue_certificates(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, *, me: str,
                       now: datetime | None = None) -> list[Issued]:
    """Issue a signed certificate for each received delivery wholly destroyed and not yet certified.

    A delivery whose certificate cannot be issued (its flow gone from the config, the mailbox down)
    is reported with its error and tried again next time; the others go on.

    Raises:
        SecretMissing, KeyRefused: Our signing key is unusable (nothing is issued).
    """
    issued = {r.delivery_id for r in ledger.records(CertificateIssued)}
    due = [d for d in ledger.records(Destroyed)
           if d.place == "received" and d.complete and d.recipient == me and d.delivery_id not in issued]
    if not due:
        return []
    from transfers.crypto import party_signing_key

    signer = party_signing_key(resolvers.secret, config.protocol, me)
    manifests = {r.delivery_id: r.manifest_sha256 for r in ledger.records(Received) if r.status == "accepted"}
    out = []
    for destroyed in due:
        try:
            out.append(_issue(settings, config, ledger, resolvers, signer, destroyed, me,
                              manifests.get(destroyed.delivery_id), now))
        except TransferError as exc:
            log.warning("destruction certificate not issued", delivery_id=destroyed.delivery_id, error=str(exc))
            out.append(Issued(destroyed.delivery_id, destroyed.controller, "", None, str(exc)))
    return out


def _issue(settings: Settings, config: Config, ledger: Ledger, resolvers: Resolvers, signer: SigningKey,
           destroyed: Destroyed, me: str, manifest_sha256: str | None, now: datetime | None) -> Issued:
    from transfers.certificate import write_certificate

    ref = config.flow(destroyed.flow or "")
    recipient = _ours(ref, me)
    certificate = _certificate(ref, ledger, signer, destroyed, me, manifest_sha256)
    if certificate.controller == me:
        from transfers.destruction import record_own_certificate

        digest = sha256_hex(certificate.to_bytes())
        record_own_certificate(config, ledger, certificate, digest)
        sent_to = "self"
    elif settings.mailbox:
        digest, sent_to = _upload(settings, resolvers, recipient, ref, certificate, signer, destroyed), "mailbox"
    else:
        folder = settings.inbox / recipient.remote_path / RECEIPTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        digest, sent_to = write_certificate(folder, certificate, signer), "inbox"
    ledger.record(CertificateIssued(agreement=ref.agreement.id, flow=ref.key, logical_date=destroyed.logical_date,
                                    recipient=me, delivery_id=destroyed.delivery_id,
                                    controller=certificate.controller, certificate_sha256=digest,
                                    rows=certificate.rows_destroyed, sent_to=sent_to, at=now))
    log.info("destruction certificate issued", delivery_id=destroyed.delivery_id, controller=certificate.controller,
             sent_to=sent_to)
    return Issued(destroyed.delivery_id, certificate.controller, sent_to, digest)


def _ours(ref: FlowRef, me: str) -> Recipient:
    for recipient in ref.flow.to:
        if recipient.partner == me:
            return recipient
    raise ConfigError(f"flow {ref.key} is no longer sent to {me}: its destruction certificate names where the "
                      f"delivery came from; issue it by hand")


def _certificate(ref: FlowRef, ledger: Ledger, signer: SigningKey, destroyed: Destroyed, me: str,
                 manifest_sha256: str | None) -> DestructionCertificate:
    from transfers.agreement.signoff import agreement_sha256
    from transfers.certificate import DestructionCertificate

    head = ledger.head()
    when = destroyed.destroyed_at or destroyed.when
    return DestructionCertificate(
        delivery_id=destroyed.delivery_id,
        agreement={"id": ref.agreement.id, "version": ref.agreement.version, "sha256": agreement_sha256(ref.path)},
        flow=ref.flow.id, logical_date=destroyed.logical_date.isoformat() if destroyed.logical_date else "",
        sender=destroyed.sender, recipient=me, controller=destroyed.controller or ref.agreement.retention.controller,
        manifest_sha256=destroyed.manifest_sha256 or manifest_sha256, rows_destroyed=destroyed.rows,
        destroyed_at=stamp(when.astimezone(UTC)) or "", rule=destroyed.rule,
        recipient_ledger_head={"seq": head.seq, "hash": head.hash} if head else None,
        signer_fingerprint=signer.fingerprint)


def _upload(settings: Settings, resolvers: Resolvers, recipient: Recipient, ref: FlowRef,
            certificate: DestructionCertificate, signer: SigningKey, destroyed: Destroyed) -> str:
    """Sign into a private temporary folder, upload beside the receipts on the mailbox, remove the folder."""
    from transfers.certificate import certificate_name, write_certificate
    from transfers.receive.mailbox import Mailbox

    assert destroyed.logical_date is not None  # a received delivery always has its date
    mailbox = Mailbox.for_flow(settings, resolvers.connection, recipient, ref, destroyed.logical_date)
    settings.home.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".certificate-", dir=settings.home))  # 0700, on the home's volume
    try:
        digest = write_certificate(folder, certificate, signer)
        mailbox.return_receipt(folder / certificate_name(certificate.base))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return digest
