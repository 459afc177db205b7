"""The ledger's record contract: one frozen dataclass per kind of entry.

Each class names its ``KIND``, builds the dedupe key (``dedupe_key()``) and the
payload (``to_payload()``) the entry is written with, and reads an entry back
(``from_entry``). Writers and readers go through these classes, never through
payload keys by string, so renaming a key is one change here, not a silent
mismatch between the writer and the purge, audit or IG report that reads it.

Invariants, because the ledger is evidence and is hash-chained:

* ``to_payload()`` and ``dedupe_key()`` produce exactly what earlier code wrote
  (same key names, same key strings), so old entries keep verifying and a re-run
  still dedupes against entries written before these classes existed;
* ``from_entry`` is tolerant: a key older code did not write gets its default;
* payloads hold names, counts, hashes, paths and fingerprints, never record values.

Every record also carries the entry's columns (``agreement``, ``flow``,
``logical_date``, ``recipient``, ``at``); a record read back keeps its ``entry``
(for ``seq`` and ``hash``).

Modules: ``base`` (``Record``, ``RemoteFile``), ``steps`` (quality, privacy, shares
without consent, pseudonym key), ``delivery`` (refused key, intent, disclosure),
``subjects`` (withdrawal, notice), ``retention`` (archive, purge, failed purge), ``exchange``
(a delivery received, its receipt acknowledged, a receipt refused), ``destruction`` (received data
destroyed at the recipient, legal holds), ``certificates`` (a destruction certificate issued at the
recipient, verified or refused at the controller), ``notices`` (a notice applied or refused at the recipient,
its confirmation recorded or refused at the sender), ``incidents`` (a security incident for breach assessment),
``extract`` (the source object an extract read: an S3 object's version id and ETag).
Import the classes from here.
"""

from __future__ import annotations

from transfers.ledger.chain import Entry
from transfers.ledger.records.base import Record, RemoteFile, stamp
from transfers.ledger.records.certificates import CertificateIssued, CertificateRefused, DestructionCertified
from transfers.ledger.records.delivery import DeliveryIntent, Disclosure, RecipientKeyRefused
from transfers.ledger.records.destruction import Destroyed, LegalHold
from transfers.ledger.records.exchange import Acknowledgement, ReceiptRefused, Received
from transfers.ledger.records.extract import Extracted
from transfers.ledger.records.incidents import Incident
from transfers.ledger.records.notices import (
    NoticeApplied,
    NoticeConfirmationRefused,
    NoticeConfirmed,
    NoticeRefused,
)
from transfers.ledger.records.retention import Archived, Purged, PurgeFailed
from transfers.ledger.records.steps import PrivacyResult, PseudonymKey, QualityResult, SharedWithoutConsent
from transfers.ledger.records.subjects import Notice, Withdrawal

__all__ = ["KINDS", "Acknowledgement", "Archived", "CertificateIssued", "CertificateRefused", "DeliveryIntent", "Destroyed",
           "DestructionCertified", "Disclosure", "Extracted", "Incident", "LegalHold", "Notice", "NoticeApplied", "NoticeConfirmationRefused",
           "NoticeConfirmed", "NoticeRefused", "PrivacyResult", "PseudonymKey", "PurgeFailed", "Purged",
           "QualityResult", "ReceiptRefused", "Received", "RecipientKeyRefused", "Record", "RemoteFile",
           "SharedWithoutConsent", "Withdrawal", "record_of", "stamp"]

#: Every kind written today, by its ``KIND``.
KINDS: dict[str, type[Record]] = {cls.KIND: cls for cls in (
    QualityResult, PrivacyResult, SharedWithoutConsent, PseudonymKey, RecipientKeyRefused, DeliveryIntent,
    Disclosure, Withdrawal, Notice, Archived, Purged, PurgeFailed, Received, Acknowledgement, ReceiptRefused,
    Destroyed, LegalHold, DestructionCertified, CertificateRefused, NoticeApplied, NoticeRefused, NoticeConfirmed,
    NoticeConfirmationRefused, CertificateIssued, Incident, Extracted)}


def record_of(entry: Entry) -> Record | None:
    """The record an entry holds, or None for a kind no code writes any more."""
    cls = KINDS.get(entry.kind)
    return cls.from_entry(entry) if cls is not None else None
