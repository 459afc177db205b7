"""Check a partner's delivery in our inbox before anything of it is loaded.

The sender (``transfers.steps.encrypt``) writes each part, then ``<base>.manifest.json.asc``,
then ``<base>.manifest.json``: a manifest with its signature beside it means a complete
delivery, and either missing means "not yet" (``DeliveryPending``). ``open_delivery`` then
checks, in this order, and refuses with ``DeliveryRejected`` (a short reason naming files,
keys and manifest keys, never record values):

- the manifest's detached signature is by the sender's pinned signing key;
- it is JSON of ``MANIFEST_FORMAT``; it is for the agreement id, version and file SHA-256 we
  hold, this flow, this sender, us, and the logical date asked for (an old delivery replayed
  under a new date is refused); its fields are the flow's shared fields, in order;
- every listed file is present with the listed size and SHA-256, and no other
  ``<base>*.pgp`` file is beside them.

``Delivery.parts`` then decrypts one part at a time in memory (``decrypt_verified``: encrypted
to us, signed by the sender's pinned key), checks the CSV header is exactly the fields, undoes
the formula escape and the per-part and total row counts. Plaintext never touches the disk.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transfers.crypto.decrypt import decrypt_verified, signature_issuer
from transfers.crypto.message import verify_detached
from transfers.csv_escape import unescape_value
from transfers.errors import DeliveryPending, DeliveryRejected
from transfers.receipt import MANIFEST_SUFFIX, SIGNATURE_SUFFIX, base_name, manifest_name, read_document, sha256_hex
from transfers.steps.encrypt import MANIFEST_FORMAT

if TYPE_CHECKING:
    from transfers.agreement import FlowRef
    from transfers.crypto.keys import DecryptionKey, SigningKey

__all__ = ["MANIFEST_FORMAT", "Delivery", "DeliveryFile", "delivery_base", "open_delivery", "pending_bases"]

Row = dict[str, str | None]


@dataclass(frozen=True)
class DeliveryFile:
    """One encrypted part as the signed manifest lists it."""

    name: str
    size: int
    sha256: str
    rows: int


@dataclass(frozen=True)
class Delivery:
    """A delivery whose manifest and files passed every check; ``parts`` yields its rows."""

    inbox_dir: Path
    base: str
    manifest: dict[str, Any]
    manifest_bytes: bytes = field(repr=False)
    manifest_sha256: str
    files: tuple[DeliveryFile, ...]
    rows: int
    fields: list[str]
    destroy_by: date
    sender: str
    own_key: DecryptionKey = field(repr=False, compare=False)
    sender_key: SigningKey = field(repr=False, compare=False)

    def parts(self) -> Iterator[list[Row]]:
        """Each part's rows (field -> value, ``None`` for an empty cell), one decrypted part in memory at a time.

        Raises:
            DeliveryRejected: Mid-stream, when a part changed since ``open_delivery``, does not
                decrypt or verify, has other columns than the fields, or another row count than
                the manifest says; after the last part, when the total differs. The caller
                loads inside one transaction and rolls back.
        """
        escaped = self.manifest.get("formula_escape") is True
        total = 0
        for entry in self.files:
            data = _read(self.inbox_dir / entry.name, entry.name)
            if len(data) != entry.size or sha256_hex(data) != entry.sha256:
                raise DeliveryRejected(f"{entry.name}: changed since the delivery was checked (size or SHA-256)")
            plaintext = decrypt_verified(data, self.own_key, self.sender_key, where=entry.name, party=self.sender)
            del data
            rows = _rows(plaintext, self.fields, escaped, entry.name)
            del plaintext
            if len(rows) != entry.rows:
                raise DeliveryRejected(f"{entry.name}: {len(rows)} rows, the manifest says {entry.rows}")
            total += len(rows)
            yield rows
        if total != self.rows:
            raise DeliveryRejected(f"{manifest_name(self.base)}: the parts hold {total} rows, the manifest says "
                                   f"{self.rows}")


def delivery_base(ref: FlowRef, day: date) -> str:
    """The base name of ``ref``'s delivery for ``day`` (what every file of it starts with)."""
    return base_name(ref.agreement.id, ref.flow.id, day.isoformat())


def pending_bases(inbox_dir: Path, agreement_id: str, flow_id: str) -> list[str]:
    """The bases of this flow's deliveries whose manifest has arrived in ``inbox_dir``, oldest date first."""
    prefix = base_name(agreement_id, flow_id, "")
    found = []
    for path in Path(inbox_dir).glob(glob.escape(prefix) + "*" + MANIFEST_SUFFIX):
        base = path.name.removesuffix(MANIFEST_SUFFIX)
        try:  # another flow whose id starts with this one's ("A" and "A_x") leaves no date here
            date.fromisoformat(base.removeprefix(prefix))
        except ValueError:
            continue
        found.append(base)
    return sorted(found)


def open_delivery(inbox_dir: Path, base: str, *, ref: FlowRef, me: str, logical_date: date,
                  own_key: DecryptionKey, sender_key: SigningKey, agreement_sha256: str) -> Delivery:
    """Check the delivery ``base`` in ``inbox_dir`` against the agreement we hold; nothing is decrypted yet.

    Args:
        inbox_dir: Where the sender wrote this flow's files for us.
        base: The delivery's base name (``delivery_base``).
        ref: The flow, as our copy of the agreement defines it.
        me: Our party id (the manifest's recipient).
        logical_date: The date asked for; the manifest must be for it.
        own_key: Our checked decryption key (``own_decryption_key``).
        sender_key: The sender's pinned, checked signing key (``load_signing_key``).
        agreement_sha256: SHA-256 of the agreement file we hold.

    Raises:
        DeliveryPending: The manifest or its signature has not arrived yet.
        DeliveryRejected: Any check in the module docstring fails (the reason names it).
    """
    inbox_dir = Path(inbox_dir)
    flow = ref.flow
    name = manifest_name(base)
    manifest_path, signature = inbox_dir / name, inbox_dir / (name + SIGNATURE_SUFFIX)
    if not manifest_path.is_file() or not signature.is_file():
        raise DeliveryPending(f"{inbox_dir}: no complete delivery {base} yet ({name} and its {SIGNATURE_SUFFIX} "
                              "signature are written last)")
    data = _read(manifest_path, name)
    _check_signature(data, _read(signature, signature.name), sender_key, flow.from_, name)
    manifest = _parse(data, name)
    try:
        _check_identity(manifest, ref, me, logical_date, agreement_sha256, name)
        fields = [str(f["name"]) for f in manifest["fields"]]
        if fields != flow.shared_fields:
            raise DeliveryRejected(f"{name}: fields {', '.join(fields)} are not the flow's shared fields "
                                   f"{', '.join(flow.shared_fields)} (in this order)")
        files = tuple(DeliveryFile(str(f["name"]), int(f["size"]), str(f["sha256"]), int(f["rows"]))
                      for f in manifest["files"])
        rows = int(manifest["rows"])
        destroy_by = date.fromisoformat(str(manifest["retention"]["destroy_by"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DeliveryRejected(f"{name}: manifest key missing or malformed ({type(exc).__name__}: {exc})") from None
    _check_files(inbox_dir, base, files, name)
    if sum(f.rows for f in files) != rows:
        raise DeliveryRejected(f"{name}: its files' rows add up to {sum(f.rows for f in files)}, not its {rows}")
    return Delivery(inbox_dir=inbox_dir, base=base, manifest=manifest, manifest_bytes=data,
                    manifest_sha256=sha256_hex(data), files=files, rows=rows, fields=fields, destroy_by=destroy_by,
                    sender=flow.from_, own_key=own_key, sender_key=sender_key)


def _check_signature(data: bytes, signature: bytes, key: SigningKey, sender: str, name: str) -> None:
    if verify_detached(data, signature, key) is not None:
        return
    pinned = f"{sender}'s pinned signing key {key.fingerprint}"
    issuer = signature_issuer(signature)
    if issuer is None:
        raise DeliveryRejected(f"{name}{SIGNATURE_SUFFIX}: not an OpenPGP signature", kind="signature")
    if issuer != key.signing_key.fingerprint.keyid:
        raise DeliveryRejected(f"{name}: signed by key {issuer}, not {pinned}", kind="signature")
    raise DeliveryRejected(f"{name}: the signature of {pinned} does not verify (the manifest was changed)",
                           kind="signature")


def _parse(data: bytes, name: str) -> dict[str, Any]:
    return read_document(data, where=name, what="manifest", version=MANIFEST_FORMAT, error=DeliveryRejected)


def _check_identity(manifest: dict[str, Any], ref: FlowRef, me: str, logical_date: date, sha256: str,
                    name: str) -> None:
    """The manifest is for the agreement text we hold, this flow, its sender, us and the date asked for."""
    theirs, ours = manifest["agreement"], ref.agreement
    if (theirs["id"], str(theirs["version"]), theirs["sha256"]) != (ours.id, str(ours.version), sha256):
        raise DeliveryRejected(
            f"{name}: manifest is for agreement {theirs['id']} version {theirs['version']} "
            f"(sha256 {str(theirs['sha256'])[:12]}…), we hold {ours.id} version {ours.version} ({sha256[:12]}…)")
    checks = [("flow", ref.flow.id), ("sender", ref.flow.from_), ("recipient", me),
              ("logical_date", logical_date.isoformat())]
    for key, expected in checks:
        if manifest[key] != expected:
            raise DeliveryRejected(f"{name}: {key} is {manifest[key]!r}, expected {expected!r}")


def _check_files(inbox_dir: Path, base: str, files: tuple[DeliveryFile, ...], name: str) -> None:
    listed = {f.name for f in files}
    if not files or len(listed) != len(files):
        raise DeliveryRejected(f"{name}: {'lists no files' if not files else 'lists a file twice'}")
    for entry in files:
        # A signed manifest still must not name a file outside the inbox, nor another delivery's.
        if Path(entry.name).name != entry.name or not entry.name.startswith(base) or not entry.name.endswith(".pgp"):
            raise DeliveryRejected(f"{name}: lists {entry.name!r}, not a part of delivery {base}")
        path = inbox_dir / entry.name
        if not path.is_file():
            raise DeliveryRejected(f"{entry.name}: listed in the manifest but missing")
        size = path.stat().st_size
        if size != entry.size:
            raise DeliveryRejected(f"{entry.name}: {size} bytes, the manifest says {entry.size}")
        if _sha256(path) != entry.sha256:
            raise DeliveryRejected(f"{entry.name}: SHA-256 differs from the manifest's")
    extra = sorted(p.name for p in inbox_dir.glob(glob.escape(base) + "*.pgp") if p.name not in listed)
    if extra:
        raise DeliveryRejected(f"{name}: {', '.join(extra)} beside the delivery but not in its manifest")


def _rows(plaintext: bytes, fields: list[str], escaped: bool, where: str) -> list[Row]:
    try:
        text = plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryRejected(f"{where}: the CSV is not UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != fields:
        header = header or []
        missing = [f for f in fields if f not in header]
        extra = [h for h in header if h not in fields]
        detail = "; ".join(part for part in (
            f"missing {', '.join(missing)}" if missing else "",
            f"extra {', '.join(extra)}" if extra else "",
        ) if part) or "the same names in another order"
        raise DeliveryRejected(f"{where}: columns are not the flow's fields ({detail})")
    rows: list[Row] = []
    try:
        for number, cells in enumerate(reader, start=1):
            if len(cells) != len(fields):
                raise DeliveryRejected(f"{where}: row {number} has {len(cells)} cells, the header {len(fields)}")
            rows.append({f: (unescape_value(v) if escaped else v) if v != "" else None
                         for f, v in zip(fields, cells, strict=True)})
    except csv.Error:
        raise DeliveryRejected(f"{where}: not a well-formed CSV") from None
    return rows


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DeliveryRejected(f"{name}: cannot be read ({exc.strerror or type(exc).__name__})") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
