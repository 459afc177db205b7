"""A copy of ``config/`` signed off by every partner with one key made at run time (no private key in the repo).

Shared by unit tests that run a flow of the sample agreement through ``check_agreement``
(which refuses an agreement some partner has not signed), so it lives here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from transfers.devkit.signoff import sign_for_partners


def sign_off(config_dir: Path, keys_dir: Path, gpg_home) -> str:
    """Pin every partner of every agreement to one new signing key, publish it in ``keys_dir``, sign for each.

    Returns:
        The signing key's fingerprint.
    """
    fpr = gpg_home.generate_key("Every partner (isp-transfers tests) <signoff@example.invalid>", algo="cv25519",
                                encryption_subkey=False)
    public = gpg_home.export_public(fpr, Path(keys_dir).parent / "signoff-public.asc").read_text()
    protocol_path = Path(config_dir) / "protocol.yaml"
    protocol = yaml.safe_load(protocol_path.read_text())
    partners = {p for path in (Path(config_dir) / "agreements").glob("*.yaml")
                for p in yaml.safe_load(path.read_text()).get("partners", [])}
    for signatory in protocol["signatories"]:
        if signatory["id"] in partners:
            signatory["signing_fingerprint"] = fpr
    protocol_path.write_text(yaml.safe_dump(protocol, sort_keys=False))
    Path(keys_dir).mkdir(parents=True, exist_ok=True)
    for partner in partners:
        key_file = Path(keys_dir) / f"{partner}.asc"
        key_file.write_text((key_file.read_text() if key_file.exists() else "") + public)
    sign_for_partners(config_dir, gpg_home.export_secret(fpr))
    return fpr
