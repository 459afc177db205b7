"""The signed destruction certificate a recipient returns once every row of a delivery is destroyed.

It travels like a receipt (:mod:`transfers.receipt`): the recipient writes it into the same
``receipts/`` folder of the inbox directory the delivery arrived in (its local inbox, or uploaded to
its mailbox), signature first:

    <inbox>/<path>/receipts/<base>.destruction.json.asc      written first
    <inbox>/<path>/receipts/<base>.destruction.json          written last: a certificate means a signed one

and the agreement's data controller (``retention.controller``) collects it: over the SFTP connection
it delivered with when the controller is the sender (:mod:`transfers.destruction`), or straight into
its own ledger when the controller is the recipient itself.

A certificate (``CERTIFICATE_FORMAT`` 1) holds no record values: ``format``, ``delivery_id``,
``agreement`` {id, version, sha256}, ``flow``, ``logical_date``, ``sender``, ``recipient``,
``controller``, ``manifest_sha256`` (of the signed manifest the rows came with), ``rows_destroyed``,
``destroyed_at``, ``rule`` (the retention rule applied, e.g. the controller's period and the
manifest's destroy-by), ``recipient_ledger_head`` {seq, hash} (after the destruction was recorded),
``signer_fingerprint``. The detached signature covers the exact bytes of the file; the controller
records the SHA-256 of those bytes as the certificate's hash.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from transfers.errors import CertificateInvalid
from transfers.files import write_atomic
from transfers.receipt import SIGNATURE_SUFFIX, base_name, read_document, sha256_hex

if TYPE_CHECKING:
    from pathlib import Path

    from transfers.crypto import SigningKey

__all__ = ["CERTIFICATE_FORMAT", "CERTIFICATE_SUFFIX", "DestructionCertificate", "certificate_name",
           "write_certificate"]

#: Bumped when a certificate key changes meaning or goes away (the controller checks it before reading on).
CERTIFICATE_FORMAT = 1
CERTIFICATE_SUFFIX = ".destruction.json"


def certificate_name(base: str) -> str:
    """The certificate's file name inside ``RECEIPTS_DIR``; its signature is this plus ``SIGNATURE_SUFFIX``."""
    return base + CERTIFICATE_SUFFIX


@dataclass(frozen=True)
class DestructionCertificate:
    """What a recipient says it destroyed of one delivery; built by the recipient, checked by the controller."""

    delivery_id: str
    agreement: dict[str, Any]  # {id, version, sha256}
    flow: str
    logical_date: str
    sender: str
    recipient: str
    controller: str
    manifest_sha256: str | None
    rows_destroyed: int
    destroyed_at: str
    rule: str
    recipient_ledger_head: dict[str, Any] | None
    signer_fingerprint: str
    format: int = field(default=CERTIFICATE_FORMAT)

    @property
    def base(self) -> str:
        """The delivery's base name (``<agreement>_<flow>_<date>``), which the file is named after."""
        return base_name(str(self.agreement.get("id", "")), self.flow, self.logical_date)

    def to_bytes(self) -> bytes:
        """The document as written (and signed): indented, keys in a fixed order."""
        data = asdict(self)
        order = ["format", *(k for k in data if k != "format")]
        return json.dumps({k: data[k] for k in order}, indent=2).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, *, where: str) -> DestructionCertificate:
        """A certificate from the bytes a recipient wrote.

        Raises:
            CertificateInvalid: Not JSON, another format, a key missing or of the wrong type (``where`` names
                the file).
        """
        raw = read_document(data, where=where, what="destruction certificate", version=CERTIFICATE_FORMAT,
                            error=CertificateInvalid)
        try:
            agreement = raw["agreement"]
            if not isinstance(agreement, dict):
                raise TypeError("agreement is not an object")
            rows = raw["rows_destroyed"]
            if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
                raise ValueError("rows_destroyed is not a count")
            head = raw.get("recipient_ledger_head")
            if head is not None and not isinstance(head, dict):
                raise TypeError("recipient_ledger_head is not an object")
            return cls(delivery_id=str(raw["delivery_id"]), agreement=dict(agreement), flow=str(raw["flow"]),
                       logical_date=str(raw["logical_date"]), sender=str(raw["sender"]),
                       recipient=str(raw["recipient"]), controller=str(raw["controller"]),
                       manifest_sha256=raw.get("manifest_sha256"), rows_destroyed=rows,
                       destroyed_at=str(raw["destroyed_at"]), rule=str(raw.get("rule") or ""),
                       recipient_ledger_head=head, signer_fingerprint=str(raw["signer_fingerprint"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CertificateInvalid(f"{where}: destruction certificate key missing or malformed ({exc})") from None


def write_certificate(folder: Path, certificate: DestructionCertificate, signer: SigningKey) -> str:
    """Write ``certificate`` into ``folder`` (the delivery's ``receipts/`` folder), signature first, and return
    the SHA-256 of the certificate's bytes.

    An existing complete certificate (the JSON file, written last) is kept as it is, byte for byte, and its
    hash returned: a retry after a crash returns what was already sent.
    """
    from transfers.crypto import sign_detached

    path = folder / certificate_name(certificate.base)
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        data = certificate.to_bytes()
        # Not private: the controller's SFTP login (often another OS user) reads it; it holds no record values.
        write_atomic(path.with_name(path.name + SIGNATURE_SUFFIX), sign_detached(data, signer), mode=0o644)
        write_atomic(path, data, mode=0o644)
    return sha256_hex(path.read_bytes())
