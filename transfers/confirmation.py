"""The signed confirmation a recipient returns when it has acted on a withdrawal or correction notice.

Same return channel as a delivery's receipt (:mod:`transfers.receipt`): the recipient writes it
into ``receipts/`` inside the inbox directory the notice arrived in, signature first, and the
sender reads both over the SFTP connection it sent the notice with:

    <inbox>/<path>/<agreement>_<flow>_<kind>-notice_<tag>.json.pgp                the notice (sender)
    <inbox>/<path>/receipts/<agreement>_<flow>_<kind>-confirmation_<tag>.json.asc  written first
    <inbox>/<path>/receipts/<agreement>_<flow>_<kind>-confirmation_<tag>.json      written last

A confirmation (``CONFIRMATION_FORMAT`` 1) holds no pseudonym and no record value: ``format``,
``reference`` (the notice's tag), ``notice`` (``withdrawal`` | ``correction``), ``agreement``, ``flow``,
``sender``, ``recipient``, ``rows`` (deleted for a withdrawal, marked for a correction), ``tables``
(searched), ``applied_at``, ``recipient_ledger_head`` {seq, hash} and ``signer_fingerprint``. The
detached signature covers the exact bytes of the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from transfers.errors import ReceiptInvalid
from transfers.receipt import read_document

__all__ = ["CONFIRMATION_FORMAT", "NOTICE_NAME", "Confirmation", "confirmation_name", "notice_name"]

#: Bumped when a key changes meaning or goes away (the sender checks it before reading on).
CONFIRMATION_FORMAT = 1
#: A notice's file name as the sender makes it (``transfers.notices``): prefix, kind and tag.
NOTICE_NAME = re.compile(r"^(?P<prefix>.+)_(?P<kind>withdrawal|correction)-notice_(?P<tag>[0-9a-f]{12})\.json\.pgp$")


def notice_name(agreement: str, flow: str, kind: str, tag: str) -> str:
    """The notice's file name (``<agreement>_<flow>_<kind>-notice_<tag>.json.pgp``), as ``transfers.notices`` sends it."""
    return f"{agreement}_{flow}_{kind}-notice_{tag}.json.pgp"


def confirmation_name(agreement: str, flow: str, kind: str, tag: str) -> str:
    """The confirmation's file name in ``receipts/``; its signature is this plus ``.asc``."""
    return f"{agreement}_{flow}_{kind}-confirmation_{tag}.json"


@dataclass(frozen=True)
class Confirmation:
    """What a recipient says it did with one notice; built by the recipient, parsed and checked by the sender."""

    reference: str
    notice: str
    agreement: str
    flow: str
    sender: str
    recipient: str
    rows: int
    tables: tuple[str, ...]
    applied_at: str
    recipient_ledger_head: dict[str, Any] | None
    signer_fingerprint: str
    format: int = field(default=CONFIRMATION_FORMAT)

    def to_bytes(self) -> bytes:
        """The document as written (and signed): indented, keys in a fixed order."""
        data = asdict(self)
        data["tables"] = list(self.tables)
        order = ["format", *(k for k in data if k != "format")]
        return json.dumps({k: data[k] for k in order}, indent=2).encode("utf-8")

    @classmethod
    def parse(cls, data: bytes, *, where: str) -> Confirmation:
        """A confirmation from the bytes a recipient wrote.

        Raises:
            ReceiptInvalid: Not JSON, another format, a key missing or of the wrong type (``where`` names the file).
        """
        raw = read_document(data, where=where, what="confirmation", version=CONFIRMATION_FORMAT,
                            error=ReceiptInvalid)
        try:
            notice = str(raw["notice"])
            if notice not in ("withdrawal", "correction"):
                raise ReceiptInvalid(f"{where}: notice {notice!r} is neither withdrawal nor correction")
            rows = raw["rows"]
            if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
                raise ReceiptInvalid(f"{where}: rows is not a count")
            head = raw.get("recipient_ledger_head")
            return cls(reference=str(raw["reference"]), notice=notice, agreement=str(raw["agreement"]),
                       flow=str(raw["flow"]), sender=str(raw["sender"]), recipient=str(raw["recipient"]), rows=rows,
                       tables=tuple(str(t) for t in raw.get("tables") or ()), applied_at=str(raw["applied_at"]),
                       recipient_ledger_head=dict(head) if isinstance(head, dict) else None,
                       signer_fingerprint=str(raw["signer_fingerprint"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ReceiptInvalid(f"{where}: confirmation key missing or malformed ({type(exc).__name__})") from None
