"""The signed receipt a recipient returns for each delivery, and where both ends find it.

Return channel (one, documented in the README): the recipient writes the receipt into a
``receipts/`` folder inside the same inbox directory the delivery arrived in, and the sender
collects it over the SFTP connection it delivered with (the host key it already pins). So a
receipt needs no second set of credentials, and the sender needs only read access to
``<path>/receipts/``:

    <inbox>/<path>/<base>.part-0001.csv.pgp ...          the delivery (written by the sender)
    <inbox>/<path>/<base>.manifest.json[.asc]
    <inbox>/<path>/receipts/<base>.receipt.json.asc      written first
    <inbox>/<path>/receipts/<base>.receipt.json          written last: a receipt means a signed receipt

``<base>`` is the delivery's base name, ``<agreement>_<flow>_<logical date>``.

A receipt (``RECEIPT_FORMAT`` 1) holds no record values: ``format``, ``delivery_id``,
``agreement`` {id, version, sha256}, ``flow``, ``logical_date``, ``sender``, ``recipient``,
``manifest_sha256``, ``files`` [{name, size, sha256}], ``rows`` (loaded; 0 when rejected),
``status`` (``accepted`` | ``rejected``), ``reason``, ``received_at``, ``destroy_by``,
``recipient_ledger_head`` {seq, hash}, ``signer_fingerprint``. The detached signature covers the
exact bytes of the file, so the sender records the SHA-256 of those bytes as the receipt's hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from transfers.errors import ReceiptInvalid

#: Bumped when a receipt key changes meaning or goes away (the sender checks it before reading on).
RECEIPT_FORMAT = 1
#: The folder, inside a delivery's inbox directory, receipts are returned in.
RECEIPTS_DIR = "receipts"
MANIFEST_SUFFIX = ".manifest.json"
RECEIPT_SUFFIX = ".receipt.json"
SIGNATURE_SUFFIX = ".asc"

Status = Literal["accepted", "rejected"]


def delivery_id(agreement: str, flow: str, ds: str, recipient: str) -> str:
    """One delivery's id, the same string at both ends (the flow names the sender)."""
    return f"{agreement}:{flow}:{ds}:{recipient}"


def base_name(agreement: str, flow: str, ds: str) -> str:
    """The name every file of one delivery starts with (the sender's ``FlowRun.base_name``)."""
    return f"{agreement}_{flow}_{ds}"


def manifest_name(base: str) -> str:
    return base + MANIFEST_SUFFIX


def receipt_name(base: str) -> str:
    """The receipt's file name inside ``RECEIPTS_DIR``; its signature is this plus ``SIGNATURE_SUFFIX``."""
    return base + RECEIPT_SUFFIX


@dataclass(frozen=True)
class ReceiptFile:
    name: str
    size: int | None
    sha256: str


@dataclass(frozen=True)
class Receipt:
    """What a recipient says it received; built by the recipient, parsed and checked by the sender."""

    delivery_id: str
    agreement: dict[str, Any]  # {id, version, sha256}
    flow: str
    logical_date: str
    sender: str
    recipient: str
    manifest_sha256: str | None
    files: tuple[ReceiptFile, ...]
    rows: int
    status: Status
    reason: str
    received_at: str
    destroy_by: str | None
    recipient_ledger_head: dict[str, Any] | None
    signer_fingerprint: str
    format: int = field(default=RECEIPT_FORMAT)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def to_bytes(self) -> bytes:
        """The document as written (and signed): indented, keys in a fixed order."""
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        order = ["format", *(k for k in data if k != "format")]
        return json.dumps({k: data[k] for k in order}, indent=2).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, *, where: str) -> Receipt:
        """A receipt from the bytes a recipient wrote.

        Raises:
            ReceiptInvalid: Not JSON, another format, a key missing or of the wrong type (``where`` names the file).
        """
        raw = read_document(data, where=where, what="receipt", version=RECEIPT_FORMAT, error=ReceiptInvalid)
        try:
            files = tuple(ReceiptFile(str(f["name"]), f.get("size"), str(f["sha256"])) for f in raw["files"])
            status = raw["status"]
            if status not in ("accepted", "rejected"):
                raise ReceiptInvalid(f"{where}: status {status!r} is neither accepted nor rejected")
            return cls(delivery_id=str(raw["delivery_id"]), agreement=dict(raw["agreement"]), flow=str(raw["flow"]),
                       logical_date=str(raw["logical_date"]), sender=str(raw["sender"]),
                       recipient=str(raw["recipient"]), manifest_sha256=raw.get("manifest_sha256"), files=files,
                       rows=int(raw["rows"]), status=status, reason=str(raw.get("reason") or ""),
                       received_at=str(raw["received_at"]), destroy_by=raw.get("destroy_by"),
                       recipient_ledger_head=raw.get("recipient_ledger_head"),
                       signer_fingerprint=str(raw["signer_fingerprint"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptInvalid(f"{where}: receipt key missing or malformed ({exc})") from None


def read_document(data: bytes, *, where: str, what: str, version: int,
                  error: Callable[[str], Exception]) -> dict[str, Any]:
    """A signed JSON document of the exchange (a manifest, a receipt) as a dict, checked to be ``version``.

    Raises:
        ``error``: Not UTF-8 JSON, not an object, or another ``format`` (``where`` names the file).
    """
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{where}: not a JSON {what} ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise error(f"{where}: not a JSON object")
    if raw.get("format") != version:
        raise error(f"{where}: {what} format {raw.get('format')!r}, this version reads {version}")
    return raw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
