"""The destruction certificate: what a recipient writes is what the controller reads back, and nothing else parses."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import require_part
from transfers.certificate import (
    CERTIFICATE_FORMAT,
    DestructionCertificate,
    certificate_name,
    write_certificate,
)
from transfers.errors import CertificateInvalid
from transfers.receipt import delivery_id, sha256_hex


def _certificate(**changes) -> DestructionCertificate:
    fields = dict(delivery_id=delivery_id("mash-referrals", "A", "2026-11-25", "south-yorkshire-police"),
                  agreement={"id": "mash-referrals", "version": "1.1", "sha256": "ab" * 32}, flow="A",
                  logical_date="2026-11-25", sender="rotherham-childrens-services",
                  recipient="south-yorkshire-police", controller="rotherham-childrens-services",
                  manifest_sha256="cd" * 32, rows_destroyed=120, destroyed_at="2032-11-25T03:00:00+00:00",
                  rule="controller rotherham-childrens-services P6Y: destroy_by 2032-11-25 (manifest)",
                  recipient_ledger_head={"seq": 40, "hash": "01" * 32}, signer_fingerprint="F" * 40)
    fields.update(changes)
    return DestructionCertificate(**fields)  # type: ignore[arg-type]


def test_a_certificate_reads_back_exactly_as_written_with_its_format_first():
    certificate = _certificate()
    data = certificate.to_bytes()
    assert next(iter(json.loads(data))) == "format" and json.loads(data)["format"] == CERTIFICATE_FORMAT
    assert DestructionCertificate.parse(data, where="c.json") == certificate


def test_it_is_named_after_the_delivery_beside_its_receipt():
    assert certificate_name("mash-referrals_A_2026-11-25") == "mash-referrals_A_2026-11-25.destruction.json"
    assert _certificate().base == "mash-referrals_A_2026-11-25"


@pytest.mark.parametrize(("data", "message"), [
    (b"\xff\xfe", "not a JSON destruction certificate"),
    (b"[1, 2]", "not a JSON object"),
    (json.dumps({"format": CERTIFICATE_FORMAT + 1}).encode(), f"destruction certificate format {CERTIFICATE_FORMAT + 1}"),
    (json.dumps({"format": CERTIFICATE_FORMAT, "delivery_id": "x"}).encode(), "key missing or malformed"),
])
def test_anything_else_is_an_invalid_certificate_naming_the_file(data, message):
    with pytest.raises(CertificateInvalid, match=f"^c.json: .*{message}"):
        DestructionCertificate.parse(data, where="c.json")


@pytest.mark.parametrize("rows", [-1, "120", True, 1.5])
def test_rows_destroyed_must_be_a_count(rows):
    raw = json.loads(_certificate().to_bytes())
    raw["rows_destroyed"] = rows
    with pytest.raises(CertificateInvalid, match="rows_destroyed|malformed"):
        DestructionCertificate.parse(json.dumps(raw).encode(), where="c.json")


@pytest.mark.integration
def test_write_puts_the_signature_first_and_keeps_a_complete_certificate(tmp_path, monkeypatch):
    require_part("gpg", shutil.which("gpg") is not None, "install it with: apt-get install -y gnupg")
    from transfers.crypto import load_own_signing_key, load_signing_key, verify_detached
    from transfers.devkit.gpg import GpgHome

    with GpgHome(tmp_path / "gnupg") as home:
        fpr = home.generate_key("syp <syp@example.invalid>", algo="cv25519", encryption_subkey=False)
        public, secret = home.export_public(fpr, tmp_path / "syp.asc"), home.export_secret(fpr)
    signer = load_own_signing_key(secret, fpr)
    folder = tmp_path / "inbox" / "receipts"
    written: list[str] = []
    import transfers.certificate as module

    real = module.write_atomic

    def spy(path, data, **kwargs):
        written.append(path.name)
        return real(path, data, **kwargs)

    monkeypatch.setattr(module, "write_atomic", spy)
    certificate = _certificate(signer_fingerprint=fpr)
    digest = write_certificate(folder, certificate, signer)

    path = folder / certificate_name(certificate.base)
    assert written == [path.name + ".asc", path.name]
    assert digest == sha256_hex(path.read_bytes()) and path.read_bytes() == certificate.to_bytes()
    assert oct(path.stat().st_mode & 0o777) == "0o644"  # the controller's SFTP login reads it
    key = load_signing_key(public, fpr)
    assert verify_detached(path.read_bytes(), (folder / (path.name + ".asc")).read_text(), key) is not None
    # A certificate already there is kept byte for byte (a retry returns what was sent).
    again = write_certificate(folder, _certificate(signer_fingerprint=fpr, rows_destroyed=1), signer)
    assert again == digest and written == [path.name + ".asc", path.name]
