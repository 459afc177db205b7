"""The data controller's side of destruction: collect each recipient's signed certificate, verify it, record it.

Once a disclosure's destroy-by has come (the agreement's ``retention.period`` after its logical date,
as the signed manifest carried it), its recipient destroys the rows and writes
``<remote_dir>/receipts/<base>.destruction.json.asc`` then ``<base>.destruction.json``
(:mod:`transfers.certificate`). Who collects it depends on the controller:

* the controller is the flow's **sender** (flow A in the sample): it reads both over the SFTP
  connection it delivered with (the same pinned host key), as receipts are collected
  (:func:`collect_certificates`);
* the controller is the **recipient** itself (flow B): it records its own certificate straight into its
  own ledger (:func:`record_own_certificate`);
* a controller that is **neither**: not supported yet; such disclosures are reported as ``unsupported``.

A certificate counts only when its detached signature verifies against the recipient's pinned signing
key and it names exactly the delivery disclosed: delivery id, flow, date, parties, controller, the
SHA-256 of the signed manifest, and every row disclosed. Anything else is recorded as
``CertificateRefused`` (with the certificate's hash) and never counts.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from transfers.certificate import DestructionCertificate, certificate_name
from transfers.errors import CertificateInvalid, StateError, TransferError
from transfers.ledger.records import Acknowledgement, CertificateRefused, DestructionCertified, Disclosure
from transfers.logs import get_logger
from transfers.receipt import MANIFEST_SUFFIX, base_name, sha256_hex
from transfers.reports.destruction import destruction_statuses
from transfers.returned import partner_signing_key, read_signed, returns_dir, returns_session

if TYPE_CHECKING:
    from collections.abc import Callable

    from transfers.agreement import Config, FlowRef, Recipient
    from transfers.connections import ConnInfo
    from transfers.crypto import SigningKey
    from transfers.delivery import SftpSession
    from transfers.ledger import Ledger
    from transfers.reports.destruction import DisclosureDestruction
    from transfers.settings import Settings

__all__ = ["CollectResult", "collect_certificates", "record_own_certificate"]

log = get_logger(__name__)


@dataclass(frozen=True)
class CollectResult:
    """What collecting found for one disclosure past its destroy-by.

    ``status``: ``certified`` (recorded now), ``refused`` (recorded as refused; ``detail`` says why),
    ``missing`` (no certificate there yet), ``error`` (the server or the key could not be used; nothing
    recorded), ``not-collected`` (the controller is not this sender: ``detail`` says who records it).
    """

    flow: str
    logical_date: str
    recipient: str
    delivery_id: str
    status: str
    detail: str = ""
    certificate_sha256: str | None = None
    ledger_seq: int | None = None


def collect_certificates(settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo],
                         *, now: datetime | None = None, flow: str | None = None,
                         session: SftpSession | None = None) -> list[CollectResult]:
    """Read, verify and record the certificate of each disclosure whose destroy-by has come and that has none.

    Only disclosures of agreements this sender controls are collected (see the module docstring).
    One SFTP session per recipient connection (``connection`` resolves its id; host key pinned);
    ``session`` replaces them all (tests pass a fake one). A refused certificate is recorded and
    reported, never raised: the other disclosures are still collected. A server that cannot be
    reached, or a recipient key that cannot be used, is reported as ``error`` for its disclosures.
    """
    now = now or datetime.now(UTC)
    due = [s for s in destruction_statuses(ledger, config, grace_days=settings.destruction_grace_days, flow=flow,
                                           now=now) if s.status in ("awaiting", "overdue", "at-controller",
                                                                    "unsupported")]
    results: list[CollectResult] = []
    groups: dict[tuple[str, str], list[tuple[DisclosureDestruction, FlowRef, Recipient]]] = {}
    for state in due:
        if state.status in ("at-controller", "unsupported"):
            results.append(_result(state, "not-collected", state.detail()))
            continue
        ref = config.flow(state.flow)
        recipient = next((r for r in ref.flow.to if r.partner == state.recipient), None)
        if recipient is None:
            results.append(_result(state, "error", f"{state.recipient} is no longer a recipient of {ref.key} in the "
                                                   f"agreement: its connection is unknown"))
            continue
        groups.setdefault((recipient.partner, recipient.sftp_connection), []).append((state, ref, recipient))
    for (partner, _conn), members in groups.items():
        try:
            key = partner_signing_key(settings, config, partner, now)
            with returns_session(settings, connection, members[0][2], session) as opened:
                for state, ref, recipient in members:
                    results.append(_collect_one(opened, ledger, key, state, ref, recipient))
        except TransferError as exc:
            log.warning("destruction certificates not collected", recipient=partner, error=str(exc))
            results.extend(_result(state, "error", str(exc)) for state, _ref, _r in members
                           if not any(r.delivery_id == state.delivery_id for r in results))
    return results


def _result(state: DisclosureDestruction, status: str, detail: str = "", sha: str | None = None,
            seq: int | None = None) -> CollectResult:
    return CollectResult(state.flow, state.logical_date, state.recipient, state.delivery_id, status, detail, sha, seq)


def _collect_one(session: SftpSession, ledger: Ledger, key: SigningKey, state: DisclosureDestruction,
                 ref: FlowRef, recipient: Recipient) -> CollectResult:
    from transfers.crypto import verify_detached

    disclosure = ledger.find_record(Disclosure, Disclosure.key_for(ref.key, state.logical_date, state.recipient))
    if disclosure is None:  # listed from the ledger a moment ago
        return _result(state, "error", f"disclosure of {ref.key} {state.logical_date} not found again")
    where = returns_dir(disclosure, recipient)
    name = certificate_name(base_name(ref.agreement.id, ref.flow.id, state.logical_date))
    path = posixpath.join(where, name)
    sha: str | None = None

    def refuse(reason: str) -> CollectResult:
        entry, _created = ledger.record(CertificateRefused(
            agreement=ref.agreement.id, flow=ref.key, logical_date=disclosure.logical_date, recipient=state.recipient,
            delivery_id=state.delivery_id, reason=reason, certificate_sha256=sha))
        log.error("destruction certificate refused", flow=ref.key, logical_date=state.logical_date,
                  recipient=state.recipient, ledger_seq=entry.seq)
        return _result(state, "refused", reason, sha, entry.seq)

    try:
        document, signature = read_signed(session, where, name, what="destruction certificate",
                                          error=CertificateInvalid)
    except CertificateInvalid as exc:  # too large to be one: not read, so no hash
        return refuse(str(exc))
    if document is None:
        return _result(state, "missing", f"no {name} in {where} yet")
    sha = sha256_hex(document)
    if signature is None:
        # The recipient writes the signature first: a certificate without one was not written by it.
        return refuse(f"{path}: no detached signature {name}.asc beside it")
    if verify_detached(document, signature, key) is None:
        return refuse(f"{path}: signature does not verify against {state.recipient}'s pinned signing key "
                      f"{key.fingerprint}")
    try:
        certificate = DestructionCertificate.parse(document, where=path)
    except CertificateInvalid as exc:
        return refuse(str(exc))
    if problem := _mismatch(ledger, ref, state, disclosure, certificate, key):
        return refuse(f"{path}: {problem}")
    entry, _created = ledger.record(DestructionCertified(
        agreement=ref.agreement.id, flow=ref.key, logical_date=disclosure.logical_date, recipient=state.recipient,
        delivery_id=state.delivery_id, certificate_sha256=sha, signer_fingerprint=key.fingerprint,
        manifest_sha256=certificate.manifest_sha256, rows=certificate.rows_destroyed,
        destroyed_at=certificate.destroyed_at, rule=certificate.rule,
        recipient_ledger_head=certificate.recipient_ledger_head))
    log.info("destruction certified", flow=ref.key, logical_date=state.logical_date, recipient=state.recipient,
             rows=certificate.rows_destroyed, ledger_seq=entry.seq)
    return _result(state, "certified", f"{certificate.rows_destroyed} rows destroyed at {certificate.destroyed_at}",
                   sha, entry.seq)


def _mismatch(ledger: Ledger, ref: FlowRef, state: DisclosureDestruction, disclosure: Disclosure,
              certificate: DestructionCertificate, key: SigningKey) -> str | None:
    """What makes ``certificate`` not a certificate for the delivery disclosed, or ``None``."""
    from transfers.returned import mismatch, signer_mismatch

    expected = {"delivery_id": state.delivery_id, "flow": ref.flow.id, "logical_date": state.logical_date,
                "sender": ref.flow.from_, "recipient": state.recipient, "controller": state.controller}
    if problem := mismatch(certificate, expected, "the delivery's"):
        return problem
    if certificate.agreement.get("id") != ref.agreement.id:
        return f"agreement.id is {certificate.agreement.get('id')!r}, the delivery's is {ref.agreement.id!r}"
    if problem := signer_mismatch(certificate.signer_fingerprint, key, state.recipient):
        return problem
    manifest = _manifest_sha256(ledger, state, disclosure)
    if manifest is not None and certificate.manifest_sha256 != manifest:
        return f"manifest_sha256 {certificate.manifest_sha256} is not the SHA-256 of the manifest sent ({manifest})"
    if certificate.rows_destroyed != disclosure.rows:
        return f"rows_destroyed {certificate.rows_destroyed}, {disclosure.rows} disclosed"
    return None


def _manifest_sha256(ledger: Ledger, state: DisclosureDestruction, disclosure: Disclosure) -> str | None:
    """The signed manifest's SHA-256: as the recipient's verified receipt said, else as recorded when uploaded."""
    ack = ledger.find_record(Acknowledgement, Acknowledgement.key_for(state.delivery_id))
    if ack is not None and ack.manifest_sha256:
        return ack.manifest_sha256
    for sent in disclosure.files:
        if sent.remote_path.endswith(MANIFEST_SUFFIX):
            return sent.sha256
    return None


def record_own_certificate(config: Config, ledger: Ledger, certificate: DestructionCertificate,
                           certificate_sha256: str) -> DestructionCertified:
    """Record the certificate this party wrote for its own destruction, when it is the agreement's controller too
    (the controller is the recipient: nothing travels). Idempotent (one per delivery id).

    Raises:
        StateError: The certificate's controller is not its recipient, or not the agreement's controller.
        ConfigError: Its flow is not in the config.
    """
    ref = config.flow(f"{certificate.agreement.get('id')}.{certificate.flow}")
    controller = ref.agreement.retention.controller
    if not (certificate.controller == certificate.recipient == controller):
        raise StateError(f"{ref.key} {certificate.logical_date}: the controller is {controller}, the recipient "
                         f"{certificate.recipient}; only a recipient that is the controller records its own "
                         f"certificate (the controller collects the others)")
    entry, _created = ledger.record(DestructionCertified(
        agreement=ref.agreement.id, flow=ref.key, logical_date=date.fromisoformat(certificate.logical_date),
        recipient=certificate.recipient, delivery_id=certificate.delivery_id, certificate_sha256=certificate_sha256,
        signer_fingerprint=certificate.signer_fingerprint, manifest_sha256=certificate.manifest_sha256,
        rows=certificate.rows_destroyed, destroyed_at=certificate.destroyed_at, rule=certificate.rule,
        recipient_ledger_head=certificate.recipient_ledger_head))
    return DestructionCertified.from_entry(entry)
