"""Withdrawal and correction notices to every partner that received a subject (protocol 3.1).

The recipients are found from the subject index beside the ledger (see
:mod:`transfers.privacy.subjects`): every (flow, recipient) whose disclosures
included the subject. Each gets one OpenPGP message holding a JSON notice, signed
with the sending party's key (the flow's ``from``, checked against its pinned
``signing_fingerprint``, as its deliveries are) and encrypted to the recipient's
pinned key, over the same pinned SFTP channel and into the same directory as its
deliveries, naming the subject only by the pseudonym(s) that recipient was sent.
An unsigned notice could be forged by anyone able to write to the inbox, so every
signing key is got before any notice is made or sent: a missing signing secret
(``SecretMissing``) or a refused key (``KeyRefused``) sends nothing. Each
notice is a ``notice`` ledger entry, with a dedupe key so a retry or the next
nightly run never sends the same notice twice. A partner that never received
the subject gets nothing.

Sent by a flow run's ``notify`` step (:mod:`transfers.steps.notify`) and by the
``consent withdraw`` and ``correct`` commands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from transfers.agreement import Config
from transfers.connections import ConnInfo, SecretLookup
from transfers.errors import ConfigError, TransferError
from transfers.files import private_dir
from transfers.ledger.records import Notice, RemoteFile
from transfers.logs import get_logger
from transfers.privacy.subjects import SubjectIndex

if TYPE_CHECKING:
    from transfers.crypto import SigningKey
    from transfers.ledger import Ledger
    from transfers.settings import Settings

log = get_logger(__name__)

Kind = Literal["withdrawal", "correction"]

ACTIONS = {
    "withdrawal": (
        "The data subject's consent to sharing has been withdrawn (or processing restricted). "
        "Under section 3.1 of the Information Sharing Protocol, stop further processing of the records "
        "received for this subject unless you hold your own lawful basis, and tell your IG lead."
    ),
    "correction": (
        "A record disclosed to you for this subject has been rectified by the sender. Treat the fields "
        "listed as inaccurate until the corrected record arrives in the next delivery, and correct your copy."
    ),
}


@dataclass
class NoticeResult:
    agreement: str
    flow: str
    recipient: str
    status: str  # sent | already-sent
    ledger_seq: int
    remote_path: str | None


def send_notices(settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo],
                 secret: SecretLookup, *, kind: Kind, lookups: dict[str, str], occasion: str,
                 fields: list[str] | None = None, index: SubjectIndex | None = None) -> list[NoticeResult]:
    """Send one ``kind`` notice to every (flow, recipient) that received the subject.

    Args:
        lookups: agreement id -> the subject's lookup under that agreement's lookup key.
        occasion: makes the dedupe key (``withdrawn`` for a withdrawal: told once; a reference for a correction).
        fields: for a correction, the names of the fields that were rectified (never their values).
        secret: Resolves the signing key's secret id (a run's ``Resolvers.secret``, the CLI's ``cli_secret``);
            required, so no caller signs with whatever the environment happens to hold.

    Raises:
        SecretMissing: the signing key secret is not set; no notice was made or sent.
        KeyRefused: a sender's signing key is refused; no notice was made or sent.
        TransferError: after trying every recipient, the first failure (the others were still sent).
    """
    own_index = index is None
    index = index or SubjectIndex.for_settings(settings)
    try:
        received: dict[tuple[str, str, str], dict[str, Any]] = {}
        for agreement_id, lookup in lookups.items():
            for event in index.events([lookup], event="disclosed"):
                if event.agreement != agreement_id:
                    continue
                slot = received.setdefault((event.agreement, event.flow or "", event.recipient or ""),
                                           {"lookup": lookup, "pseudonyms": {}, "dates": set()})
                if event.pseudonym:
                    slot["pseudonyms"][event.pseudonym] = event.key_id
                if event.logical_date:
                    slot["dates"].add(event.logical_date.isoformat())
        signers = _signers(config, ledger, secret, received, kind, occasion)
        results: list[NoticeResult] = []
        failures: list[TransferError] = []
        for (agreement_id, flow_key, partner), slot in sorted(received.items()):
            try:
                results.append(_send_one(settings, config, ledger, connection, index, kind=kind, occasion=occasion,
                                         fields=fields or [], agreement_id=agreement_id, flow_key=flow_key,
                                         partner=partner, slot=slot, signers=signers))
            except TransferError as exc:
                log.error("notice not sent", flow=flow_key, recipient=partner, kind=kind, error=str(exc))
                failures.append(exc)
        if failures:
            raise failures[0]
        return results
    finally:
        if own_index:
            index.close()


def _signers(config: Config, ledger: Ledger, secret: SecretLookup, received: dict[tuple[str, str, str], Any],
             kind: Kind, occasion: str) -> dict[str, SigningKey]:
    """The checked signing key of every party with a notice still to send, before any is sent."""
    from transfers.crypto import party_signing_key

    senders: set[str] = set()
    for (_agreement_id, flow_key, partner), slot in received.items():
        if ledger.find(Notice.key_for(kind, flow_key, partner, slot["lookup"], occasion)) is not None:
            continue  # already told: nothing to sign
        try:
            senders.add(config.flow(flow_key).flow.from_)
        except ConfigError:
            continue  # a flow gone from the agreement: _send_one reports it for that recipient
    return {sender: party_signing_key(secret, config.protocol, sender) for sender in sorted(senders)}


def _send_one(settings: Settings, config: Config, ledger: Ledger, connection: Callable[[str], ConnInfo],
              index: SubjectIndex, *, kind: Kind, occasion: str, fields: list[str], agreement_id: str,
              flow_key: str, partner: str, slot: dict[str, Any], signers: dict[str, SigningKey]) -> NoticeResult:
    from transfers.crypto import encrypt_to_file, load_recipient_key
    from transfers.delivery import SftpTarget, deliver_file, open_sftp

    lookup = slot["lookup"]
    dedupe = Notice.key_for(kind, flow_key, partner, lookup, occasion)
    existing = ledger.find(dedupe)
    if existing is not None:
        sent = Notice.from_entry(existing)
        return NoticeResult(agreement_id, flow_key, partner, "already-sent", existing.seq,
                            sent.file.remote_path if sent.file else None)
    ref = config.flow(flow_key)
    recipient = next((r for r in ref.flow.to if r.partner == partner), None)
    if recipient is None:
        raise ConfigError(f"flow {flow_key}: {partner!r} received this subject but is no longer a recipient "
                            "in the agreement; send the notice by hand and record it")
    tag = hashlib.sha256(dedupe.encode()).hexdigest()[:12]
    name = f"{agreement_id}_{ref.flow.id}_{kind}-notice_{tag}.json.pgp"
    local = settings.layout.notices_dir(agreement_id, ref.flow.id, partner) / name
    pseudonyms = sorted(slot["pseudonyms"])
    if not local.exists():
        # Made once: a retry re-sends the same bytes, so the server's copy reconciles rather than conflicts.
        notice = {
            "notice": kind,
            "agreement": agreement_id,
            "flow": ref.flow.id,
            "sender": ref.flow.from_,
            "sender_signing_fingerprint": signers[ref.flow.from_].fingerprint,
            "recipient": partner,
            "subject": {"field": ref.flow.subject, "pseudonyms": pseudonyms,
                        "key_ids": sorted({k for k in slot["pseudonyms"].values() if k})},
            "disclosures": sorted(slot["dates"]),
            "fields": fields,
            "action": ACTIONS[kind],
            "reference": tag,
            "issued_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        key = load_recipient_key(settings.keys / recipient.key_file, recipient.pgp_fingerprint)
        private_dir(local.parent)
        encrypt_to_file(json.dumps(notice, indent=2).encode(), key, local, filename=name.removesuffix(".pgp"),
                        signer=signers[ref.flow.from_])
    target = SftpTarget.from_connection(connection(recipient.sftp_connection), recipient, settings=settings)
    with open_sftp(target) as session:
        receipt = deliver_file(session, local, name)
    entry, _created = ledger.record(Notice(
        agreement=agreement_id, flow=flow_key, recipient=partner, notice=kind, lookup=lookup, occasion=occasion,
        pseudonyms=tuple(pseudonyms), fields=tuple(fields), reference=tag,
        recipient_fingerprint=recipient.pgp_fingerprint, host=f"{target.host}:{target.port}",
        file=RemoteFile(receipt.remote_path, receipt.size, receipt.sha256, receipt.status)))
    index.record([{"event": "notice", "agreement": agreement_id, "flow": flow_key, "logical_date": None,
                   "recipient": partner, "lookup": lookup, "pseudonym": pseudonyms[0] if pseudonyms else None,
                   "key_id": slot["pseudonyms"].get(pseudonyms[0]) if pseudonyms else None,
                   "detail": kind, "ref": dedupe}])
    log.info("notice sent", flow=flow_key, recipient=partner, kind=kind, ledger_seq=entry.seq)
    return NoticeResult(agreement_id, flow_key, partner, "sent", entry.seq, receipt.remote_path)

