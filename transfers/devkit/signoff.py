"""Sign every agreement of a test or demo workspace for each partner whose pinned signing key we hold.

Used by the tests and the demo, never by a transfer: there one party signs as itself
(``transfers agreement sign``). Here one process plays every partner, so a workspace
may pin several partners to one throwaway key; each still gets its own signature file.
"""

from __future__ import annotations

from pathlib import Path

from transfers.agreement import load_config
from transfers.crypto import load_own_signing_key, own_key_fingerprint
from transfers.signoff import sign_agreement

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
