"""One error hierarchy for every step of a transfer.

Each class says whether trying again can help, and carries the exit code the
CLI ends with (``exit_code``). The DAG layer lets a ``RetriableError`` retry
and fails a ``TerminalError`` at once. Messages name the object (file, field,
host, key) and the next step, and never carry secrets, key material or
record values.

    TransferError
    ├── TerminalError                 trying again will not help
    │   ├── ConfigError               agreement/protocol YAML is wrong (file + key path)
    │   ├── AgreementNotLive          lapsed, not yet in force, or not in the Tier 1 register
    │   ├── AgreementNotSigned        a partner has not signed this version of the agreement file
    │   ├── SecretMissing             a secret the flow needs was not provided
    │   ├── SourceError               extract failed: missing file or S3 object, broken CSV, schema drift
    │   ├── QualityBlocked            a characteristic with policy ``block`` failed
    │   ├── PrivacyError              a field cannot be minimised/pseudonymised as declared
    │   │   └── DisclosureRiskBlocked k below the flow's min_k and the flow says block
    │   ├── KeyRefused                recipient key not pinned, expired, revoked or weak
    │   ├── EncryptionFailed          the OpenPGP library did not make the message we require (SEIPD)
    │   ├── HostKeyMismatch           SFTP host key unknown or changed
    │   ├── DeliveryRefused           login refused or remote path not permitted
    │   ├── DeliveryConflict          a different file already sits under the final name
    │   ├── ArchiveRefused            the archive store refused, or kept a copy it was told to delete
    │   ├── WorkStoreRefused          the work store (S3) refused: no such bucket, wrong credentials
    │   ├── LedgerTampered            the hash chain or its anchor does not verify
    │   ├── DeliveryRejected          (recipient) a delivery failed verification: quarantined, never loaded
    │   ├── ReceiptInvalid            (sender) a receipt is unreadable, unsigned, or not the recipient's key
    │   ├── ReceiptRejected           (sender) the recipient's signed receipt rejects the delivery
    │   ├── ReceiptOverdue            (sender) no receipt within the flow's ``receipt_within``
    │   ├── DestructionFailed         (recipient) received rows or quarantined files still there after deletion
    │   ├── CertificateInvalid        (controller) a destruction certificate unreadable, unsigned, or not for the delivery
    │   └── StateError                a step run out of order (e.g. deliver before encrypt)
    └── RetriableError                a later attempt may succeed
        ├── SourceUnavailable         database or file store not reachable (an S3 object replaced mid-read)
        ├── DeliveryUnavailable       SFTP server down, connection dropped, upload cut short
        ├── ArchiveUnavailable        the archive store (S3) cannot be reached or failed the request
        ├── WorkStoreUnavailable      the work store (S3) cannot be reached or failed the request
        ├── PurgeIncomplete           some due copies were not deleted; they stay due for the next purge
        ├── LedgerUnavailable         ledger database unreachable, or its append lock held too long
        ├── WorkspaceFull             the local disk (staging, outbox) is full: free space, run again
        ├── RunLocked                 another run of the same (flow, logical date) is going on
        ├── DeliveryPending           (recipient) no complete, signed manifest in the inbox yet
        ├── StoreUnavailable          (recipient) its store database cannot be reached; nothing was loaded
        └── ReceiptPending            (sender) no receipt returned yet, still within ``receipt_within``

Exit codes (``exit_code``, inherited unless a class sets its own): 1 terminal,
2 ``ConfigError``, 3 ``LedgerTampered``, 4 ``RunLocked``, 75 retriable.
"""

from __future__ import annotations


class TransferError(Exception):
    """Root of every error this package raises on purpose."""

    retriable: bool = False
    #: What ``transfers`` exits with when this error ends a command (see ``transfers.cli``).
    exit_code: int = 1


class TerminalError(TransferError):
    """Trying again without a change to config, data or keys will not help."""


class RetriableError(TransferError):
    """A later attempt may succeed (network, a server restarting)."""

    retriable = True
    exit_code = 75  # EX_TEMPFAIL: scripts and schedulers know to try again later


class ConfigError(TerminalError):
    """Agreement or protocol configuration is invalid.

    ``problems`` holds every problem found, so a data engineer fixes them all
    in one pass instead of one per run.
    """

    exit_code = 2

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class AgreementNotLive(TerminalError):
    """The agreement does not allow a transfer on this date."""


class AgreementNotSigned(TerminalError):
    """Not every partner has a valid signature, by its pinned key, over these exact agreement bytes.

    ``unsigned`` lists the partners still to sign this version (``transfers agreement sign``).
    """

    def __init__(self, message: str, *, agreement: str = "", version: str = "",
                 unsigned: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.agreement, self.version, self.unsigned = agreement, version, tuple(unsigned)


class SecretMissing(TerminalError):
    """A secret (connection, pseudonymisation key, staging key, signing key) is not set."""


class SourceError(TerminalError):
    """The extract cannot be read as agreed."""


class SourceUnavailable(RetriableError):
    """The source system could not be reached."""


class QualityBlocked(TerminalError):
    """A data-quality characteristic whose policy is ``block`` failed.

    ``report`` is the data owner's scorecard (a path), for the alert that tells them (``transfers.alerts``).
    """

    def __init__(self, message: str, *, report: str | None = None) -> None:
        super().__init__(message)
        self.report = report


class PrivacyError(TerminalError):
    """Minimisation, pseudonymisation or generalisation could not be applied."""


class KeyRefused(TerminalError):
    """The recipient's OpenPGP key must not be used. ``revoked``: refused because it (or its only usable
    subkey) is revoked, a security incident (``transfers.incidents``) rather than a key that merely aged."""

    def __init__(self, message: str, *, revoked: bool = False) -> None:
        super().__init__(message)
        self.revoked = revoked


class HostKeyMismatch(TerminalError):
    """The SFTP server's host key is not the pinned one. ``address`` (host:port) and ``offered`` (the offered
    key's type and fingerprint) are set where the key was seen, for the incident record."""

    def __init__(self, message: str, *, address: str = "", offered: str = "") -> None:
        super().__init__(message)
        self.address, self.offered = address, offered


class DeliveryRefused(TerminalError):
    """The SFTP server refused our login or the remote directory."""


class DeliveryConflict(TerminalError):
    """A different file already exists under the name we would deliver."""


class EncryptionFailed(TerminalError):
    """The OpenPGP library produced something other than what we promise recipients; nothing is written."""


class ArchiveRefused(TerminalError):
    """The archive store refused a request, or still holds a copy that was deleted (names the object)."""


class ArchiveUnavailable(RetriableError):
    """The archive store cannot be reached or failed the request; a later attempt may succeed."""


class WorkStoreRefused(TerminalError):
    """The work store (``TRANSFERS_WORK_STORE``, S3) refused a request: names the bucket and the connection."""


class WorkStoreUnavailable(RetriableError):
    """The work store cannot be reached or failed a request; a later attempt may succeed."""


class PurgeIncomplete(RetriableError):
    """Some due copies could not be deleted; each stays due and is recorded as ``purge-failed``."""


class DeliveryUnavailable(RetriableError):
    """The SFTP server could not be reached or the upload did not complete."""


class LedgerTampered(TerminalError):
    """The ledger's hash chain or head anchor does not verify."""

    exit_code = 3


class StateError(TerminalError):
    """A step was asked to run before the step it depends on (e.g. deliver before package).

    Terminal: running it again changes nothing until the earlier step has run.
    """


class DisclosureRiskBlocked(PrivacyError):
    """The smallest group is below the flow's min_k and the flow says block."""


class LedgerUnavailable(RetriableError):
    """The ledger database could not be reached, or another append held the lock too long."""


class WorkspaceFull(RetriableError):
    """A local write (staging, outbox) failed for lack of space; the same run succeeds once space is freed."""


class RunLocked(RetriableError):
    """Another run of the same (flow, logical date) holds its lock; this one did nothing.

    Retriable: once that run ends, a retry finds the work done (or takes over).
    ``holder`` is the ``transfers.runlock.Holder`` seen, when there was one.
    """

    exit_code = 4  # its own code: nothing was done, unlike a failure (1) or a retry (75)

    def __init__(self, message: str, *, flow: str = "", ds: str = "", holder: object | None = None) -> None:
        super().__init__(message)
        self.flow, self.ds, self.holder = flow, ds, holder


class DeliveryRejected(TerminalError):
    """At the recipient: a delivery failed a check (signature, hash, columns, rows, agreement version, date).

    Nothing was loaded; the files are kept encrypted in quarantine and a signed rejection is returned.
    ``reason`` is the short text the receipt and the ledger carry (names files and keys, never values).
    ``kind`` is ``signature`` when a signature failed (unsigned, another signer, does not verify, weak hash),
    a security incident (``transfers.incidents``); ``check`` for every other check.
    """

    def __init__(self, reason: str, *, kind: str = "check") -> None:
        super().__init__(reason)
        self.reason, self.kind = reason, kind


class ReceiptInvalid(TerminalError):
    """At the sender: a receipt that cannot count (unreadable, unsigned, signed by another key, other hashes)."""


class ReceiptRejected(TerminalError):
    """At the sender: the recipient's verified receipt says it rejected the delivery (its reason is in the message)."""


class ReceiptOverdue(TerminalError):
    """At the sender: no receipt came back within the flow's ``receipt_within`` period."""


class CertificateInvalid(TerminalError):
    """At the controller: a destruction certificate that cannot count (unreadable, another format, unsigned,
    signed by another key, or naming another delivery, manifest or row count than was disclosed)."""


class DeliveryPending(RetriableError):
    """At the recipient: the inbox has no complete, signed manifest for this (flow, date) yet; look again later."""


class ReceiptPending(RetriableError):
    """At the sender: no receipt yet, and ``receipt_within`` has not run out; look again later."""


class StoreUnavailable(RetriableError):
    """At the recipient: the store database could not be reached (or a lock wait ran out); nothing was loaded."""


class DestructionFailed(TerminalError):
    """At the recipient: a received delivery's rows (or a quarantined delivery's files) could not be destroyed,
    or were still there afterwards. Nothing is claimed destroyed; it stays due and the next purge tries again."""
