"""Send one recipient's sealed outbox over its pinned SFTP channel (or its NHS MESH mailbox) and record the disclosure once.

Archived before it is sent; an intent is recorded before the first byte leaves, so a
cut upload is still visible in the ledger; data files go first, then the manifest's
detached signature, and the manifest last (its presence means the delivery is complete);
a file the recipient already holds is recognised by its hash (``reconciled``). A
recipient with a disclosure already is not sent to again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from transfers.errors import HostKeyMismatch, StateError
from transfers.ledger.records import DeliveryIntent, Disclosure, RemoteFile
from transfers.logs import get_logger

if TYPE_CHECKING:
    from transfers.agreement import Recipient
    from transfers.delivery import SftpTarget
    from transfers.flowrun import FlowRun, Resolvers
    from transfers.ledger import Ledger

log = get_logger(__name__)


class DeliverResult(TypedDict, total=False):
    status: str  # delivered | reconciled | already-delivered
    ledger_seq: int
    files: int
    rows: int
    archived: int


def deliver(run: FlowRun, resolvers: Resolvers, ledger: Ledger, recipient: Recipient) -> DeliverResult:
    """Archive the sealed outbox, upload it to the recipient, record the disclosure once.

    The recipient's SFTP connection, and the archive's when the flow archives to S3,
    come from ``resolvers``.
    """
    from transfers.delivery import SftpTarget
    from transfers.privacy.step import record_disclosure
    from transfers.retention.archive import archive_delivery
    from transfers.steps.encrypt import signature_path

    partner = recipient.partner
    target: SftpTarget | None = None
    if recipient.mesh is not None:
        # A MESH recipient's ledger entries name its mailbox and workflow where an SFTP one names host and directory.
        host, remote_dir = f"mesh:{recipient.mesh.mailbox}", f"mesh:{recipient.mesh.workflow_id}"
    else:
        target = SftpTarget.from_connection(resolvers.connection(recipient.sftp_connection), recipient,
                                            settings=run.settings)
        host, remote_dir = f"{target.host}:{target.port}", target.remote_dir
        _warn_of_ending_pins(run, partner, host, target)
    existing = ledger.find(run.disclosure_key(recipient))
    if existing is not None:
        log.info("already delivered", **run._ctx(recipient=partner, host=host, ledger_seq=existing.seq))
        return {"status": "already-delivered", "ledger_seq": existing.seq}
    outbox = run.outbox_dir(recipient)
    manifest_path = outbox / f"{run.base_name}.manifest.json"
    if not manifest_path.exists():
        raise StateError(f"{outbox}: nothing encrypted for {partner} on {run.ds}; run the encrypt step first")
    manifest = json.loads(manifest_path.read_text())
    signature = signature_path(manifest_path)
    if not signature.exists():
        raise StateError(f"{outbox}: the manifest has no signature {signature.name} beside it; this outbox was "
                         "sealed before deliveries were signed: remove it and run the encrypt step again")
    # Archived before it is sent: if archiving fails nothing leaves, and the retry archives it
    # (idempotent), so every disclosure has its archived copy.
    # Data files first, the manifest last: a recipient that sees the manifest knows every file it
    # lists, and the manifest's signature, is complete.
    names = [item["name"] for item in manifest["files"]] + [signature.name, manifest_path.name]
    archived = archive_delivery(run.settings.home, run.ref, run.ds, partner, outbox, names, ledger,
                                resolvers.connection)
    record_intent(run, recipient, host, remote_dir, manifest, ledger)
    if target is None:
        from transfers.steps.deliver_mesh import ledger_files, send_outbox

        files = ledger_files(send_outbox(resolvers, recipient, outbox, names))
    else:
        files = _upload(run, ledger, target, outbox, names)
    statuses = {f.status for f in files}
    status = "reconciled" if statuses == {"reconciled"} else "delivered"
    # Pseudonyms of the subjects sent go beside the ledger; the entry holds their count and hash.
    subjects = record_disclosure(run, partner, run.disclosure_key(recipient), outbox)
    agreement = run.ref.agreement
    entry, created = ledger.record(Disclosure(
        agreement=agreement.id, flow=run.ref.key, logical_date=run.logical_date, recipient=partner, status=status,
        sender=run.ref.flow.from_, purposes=tuple(agreement.purposes), legal_basis=tuple(agreement.legal_basis),
        fields=tuple(f["name"] for f in manifest["fields"]), rows=manifest["rows"], recipient_fingerprint=recipient.pgp_fingerprint,
        host=host, remote_dir=remote_dir,
        pseudonym_key_id=agreement.pseudonymisation.key_id if agreement.pseudonymisation else None,
        subjects=subjects, files=files))
    log.info("delivered", **run._ctx(recipient=partner, host=host, status=status, files=len(files),
                                     rows=manifest["rows"], bytes=sum(f.size or 0 for f in files),
                                     archived=archived.get("archived", 0), ledger_seq=entry.seq))
    return {"status": status, "files": len(files), "rows": manifest["rows"], "ledger_seq": entry.seq,
            "archived": archived.get("archived", 0)}


def _warn_of_ending_pins(run: FlowRun, partner: str, host: str, target: SftpTarget) -> None:
    """A host-key pin that ends within 30 days is a warning each night: pin the partner's next key before
    then, or that night's connection is refused (``validate --connect`` says the same)."""
    from datetime import UTC, datetime

    from transfers.delivery.hostkeys import pin_warnings

    notes = pin_warnings(target.host_keys, datetime.now(UTC).date())
    if notes:
        log.warning("host key pin ending", **run._ctx(recipient=partner, host=host, detail="; ".join(notes)))


def _upload(run: FlowRun, ledger: Ledger, target: SftpTarget, outbox: Path, names: list[str]) -> tuple[RemoteFile, ...]:
    """Upload ``names`` from ``outbox`` in order over SFTP; a host key mismatch is recorded as an incident."""
    from transfers.delivery import deliver_file, open_sftp

    receipts = []
    try:
        with open_sftp(target) as session:
            for name in names:
                receipts.append(deliver_file(session, outbox / name, name))
    except HostKeyMismatch as exc:
        host_key_incident(run, ledger, target.recipient, exc, f"{target.host}:{target.port}")
        raise
    return tuple(RemoteFile(r.remote_path, r.size, r.sha256, r.status) for r in receipts)


def record_intent(run: FlowRun, recipient: Recipient, host: str, directory: str, manifest: dict[str, Any],
                  ledger: Ledger) -> None:
    """Before the first byte leaves: which files are about to reach ``recipient``, once per (flow, date).

    If the upload stops after a data file landed (the manifest failed, the task was
    killed), the ledger still shows what may sit at the recipient; the retry
    reconciles those files into the disclosure, and remote purge can find them
    even if no retry ever comes.
    """
    key = run.disclosure_key(recipient)

    def remote(name: str) -> str:
        return name if directory == "." else f"{directory}/{name}"

    files = [RemoteFile(remote(f["name"]), f["size"], f["sha256"]) for f in manifest["files"]]
    files.append(RemoteFile(remote(f"{run.base_name}.manifest.json.asc")))
    files.append(RemoteFile(remote(f"{run.base_name}.manifest.json")))
    ledger.record(DeliveryIntent(
        agreement=run.ref.agreement.id, flow=run.ref.key, logical_date=run.logical_date, recipient=recipient.partner,
        disclosure_key=key, host=host, remote_dir=directory, files=tuple(files)))


def host_key_incident(run: FlowRun, ledger: Ledger, partner: str, exc: HostKeyMismatch, address: str) -> None:
    """A partner's server offered a key that is not pinned: a security incident seen by the sender."""
    from transfers.incidents import record_incident
    from transfers.ledger.records.incidents import HOST_KEY_MISMATCH

    record_incident(ledger, run.ref.agreement, what=HOST_KEY_MISMATCH, party=run.ref.flow.from_, flow=run.ref.key,
                    logical_date=run.logical_date, partner=partner, where=exc.address or address,
                    evidence=exc.offered, detail=str(exc), settings=run.settings)
