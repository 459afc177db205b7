"""A partner's recipient played by a thread while a send DAG runs: once a flow's manifest lands on the test
sshd, it puts a receipt signed with the test world's signing key beside it (accepted, or rejected).

The DAG's ``await_receipt`` sensor then finds a real signed receipt, verified as any partner's would be.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from typing import Any

from tests.integration.conftest import LOGICAL_DATE


class StandInRecipient(threading.Thread):
    """Returns the signed receipt for ``flow``'s delivery of ``LOGICAL_DATE`` under ``inbound`` on the sshd."""

    def __init__(self, world: Any, flow: str, inbound: str, *, accept: bool = True) -> None:
        super().__init__(daemon=True)
        self.flow = flow
        self.inbound = world.remote_root / inbound
        self.secret = world.secrets["transfers_signing_key"]  # every partner's signing key in the test world
        self.accept = accept
        self.stop = threading.Event()

    def run(self) -> None:
        from transfers.crypto import load_own_signing_key, own_key_fingerprint, sign_detached
        from transfers.receipt import Receipt, ReceiptFile, delivery_id

        base = f"mash-referrals_{self.flow}_{LOGICAL_DATE.isoformat()}"
        manifest_path = self.inbound / f"{base}.manifest.json"
        while not manifest_path.exists():
            if self.stop.wait(0.5):
                return
        data = manifest_path.read_bytes()
        manifest = json.loads(data)
        fingerprint = own_key_fingerprint(self.secret)
        receipt = Receipt(
            delivery_id=delivery_id("mash-referrals", self.flow, manifest["logical_date"], manifest["recipient"]),
            agreement=manifest["agreement"], flow=self.flow, logical_date=manifest["logical_date"],
            sender=manifest["sender"], recipient=manifest["recipient"],
            manifest_sha256=hashlib.sha256(data).hexdigest(),
            files=tuple(ReceiptFile(f["name"], f["size"], f["sha256"]) for f in manifest["files"]),
            rows=manifest["rows"] if self.accept else 0, status="accepted" if self.accept else "rejected",
            reason="" if self.accept else "rows do not match the manifest",
            received_at=datetime.now(UTC).isoformat(timespec="seconds"), destroy_by=None,
            recipient_ledger_head=None, signer_fingerprint=fingerprint).to_bytes()
        folder = self.inbound / "receipts"
        folder.mkdir(exist_ok=True)
        signature = sign_detached(receipt, load_own_signing_key(self.secret, fingerprint))
        (folder / f"{base}.receipt.json.asc").write_text(signature)
        (folder / f"{base}.receipt.json").write_bytes(receipt)
