"""Sign every agreement of a test or demo workspace for each partner whose pinned signing key we hold.

Used by the tests and the demo, never by a transfer: there one party signs as itself
(``transfers agreement sign``). Here one process plays every partner, so a workspace
may pin several partners to one throwaway key; each still gets its own signature file.
"""

from __future__ import annotations

from pathlib import Path

from transfers.agreement import load_config
from transfers.agreement.signoff import sign_agreement
from transfers.crypto import load_own_signing_key, own_key_fingerprint

__all__ = ["sign_for_partners"]


def sign_for_partners(config_dir: Path, *armored_keys: str) -> list[tuple[str, str, Path]]:
    """Sign each agreement under ``config_dir`` for every partner pinned to one of ``armored_keys``.

    Returns:
        (agreement id, partner, signature file) for each signature written.
    """
    config = load_config(Path(config_dir))
    keys = {}
    for armored in armored_keys:
        fingerprint = own_key_fingerprint(armored)
        keys[fingerprint] = load_own_signing_key(armored, fingerprint)
    written = []
    for loaded in config.agreements:
        for partner in loaded.agreement.partners:
            signatory = config.protocol.signatory(partner)
            key = keys.get(signatory.signing_fingerprint or "") if signatory else None
            if key is not None:
                _, path = sign_agreement(loaded.path, loaded.agreement, config.protocol, key, partner)
                written.append((loaded.agreement.id, partner, path))
    return written


def resign_sample(config_dir: Path, keys_dir: Path) -> list[tuple[str, str, Path]]:
    """Give every partner of the committed sample agreements a new throwaway signing key and sign for each.

    The committed sample must validate, and its partners' private keys are never kept: after
    an edit of a sample agreement file, this is how its signatures are made again. For each
    partner: a new Ed25519 sign-only key (in a temporary GNUPGHOME, deleted after), its public
    key replaces the old signing key in ``keys/<partner>.asc`` (a key also pinned as a recipient
    stays), its fingerprint replaces the pin in protocol.yaml (a text edit: comments stay).
    """
    import tempfile

    from transfers.crypto.parsing import _armour_blocks, fingerprint_of, parse_bytes
    from transfers.devkit.gpg import GpgHome

    config = load_config(Path(config_dir))
    partners = list(dict.fromkeys(p for loaded in config.agreements for p in loaded.agreement.partners))
    recipients = {r.pgp_fingerprint for ref in config.flows() for r in ref.flow.to}
    protocol_path = Path(config_dir) / "protocol.yaml"
    text = protocol_path.read_text(encoding="utf-8")
    secrets = []
    with tempfile.TemporaryDirectory() as tmp, GpgHome(Path(tmp) / "gnupg") as gpg:
        for partner in partners:
            signatory = config.protocol.signatory(partner)
            name = signatory.name if signatory else partner
            fpr = gpg.generate_key(f"{name} signing (sample, throwaway) <{partner}@sample.invalid>",
                                   algo="cv25519", encryption_subkey=False, expire="2028-03-31")
            key_file = Path(keys_dir) / f"{partner}.asc"
            old = signatory.signing_fingerprint if signatory else None
            kept = []
            if key_file.exists():
                for block in _armour_blocks(key_file.read_bytes()):
                    found = fingerprint_of(parse_bytes(block, str(key_file), None))
                    if found != old or found in recipients:
                        kept.append(block.decode("ascii").rstrip("\n") + "\n")
            public = gpg.export_public(fpr, Path(tmp) / f"{partner}.asc").read_text(encoding="ascii")
            key_file.write_text("".join(kept) + public, encoding="ascii")
            shown = " ".join(fpr[i:i + 4] for i in range(0, 20, 4)) + "  " + " ".join(
                fpr[i:i + 4] for i in range(20, 40, 4))
            entry = f"{{id: {partner}, "
            start = text.index(entry)
            end = text.index("}", start)
            line = text[start:end]
            if "signing_fingerprint:" in line:
                a = line.index("signing_fingerprint:")
                line = line[:a] + f'signing_fingerprint: "{shown}"'
            else:
                line = line + f',\n     signing_fingerprint: "{shown}"'
            text = text[:start] + line + text[end:]
            secrets.append(gpg.export_secret(fpr))
        protocol_path.write_text(text, encoding="utf-8")
        return sign_for_partners(config_dir, *secrets)


if __name__ == "__main__":  # python -m transfers.devkit.signoff: re-sign the committed sample config
    from transfers.settings import PROJECT_ROOT

    for agreement_id, partner, path in resign_sample(PROJECT_ROOT / "config", PROJECT_ROOT / "keys"):
        print(f"{agreement_id}: signed for {partner}: {path.relative_to(PROJECT_ROOT)}")
