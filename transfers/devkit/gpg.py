"""Play the partner with the real ``gpg``: make key pairs, export, revoke, decrypt, verify signatures.

Used by the tests and the demo, never by a transfer. Each ``GpgHome`` is its
own ``GNUPGHOME`` (a directory made here), so the user's ``~/.gnupg`` is never
read or changed. Keys have an empty passphrase: they are throwaway keys made
at run time, and private keys never leave that directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

#: algo name -> (primary key algorithm, encryption subkey algorithm), in gpg's spelling.
ALGORITHMS: dict[str, tuple[str, str]] = {
    "rsa3072": ("rsa3072", "rsa3072"),
    "rsa4096": ("rsa4096", "rsa4096"),
    "rsa2048": ("rsa2048", "rsa2048"),
    "cv25519": ("ed25519", "cv25519"),
    "nistp256": ("nistp256", "nistp256"),
    "dsa2048": ("dsa2048", "elg2048"),
}


def signed_by(status: list[str]) -> str | None:
    """The primary key fingerprint gpg reports a good, valid signature from (GOODSIG and VALIDSIG), else None.

    VALIDSIG's last field is the primary key's fingerprint even when a subkey signed.
    """
    valid = next((s.split() for s in status if s.startswith("VALIDSIG ")), None)
    if valid is None or not any(s.startswith("GOODSIG ") for s in status):
        return None
    return valid[-1].upper()


class GpgError(RuntimeError):
    """``gpg`` exited with an error; the message carries its stderr."""


class GpgHome:
    """One partner's keyring in its own ``GNUPGHOME``.

    Args:
        path: Directory for the keyring; created with mode 0700.
    """

    def __init__(self, path: Path) -> None:
        if shutil.which("gpg") is None:
            raise GpgError("the gpg command is not installed (apt-get install gnupg)")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.path, 0o700)  # gpg warns about (and may ignore) a group-readable home

    def __repr__(self) -> str:
        return f"GpgHome({str(self.path)!r})"

    def __enter__(self) -> GpgHome:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``gpg`` in this home, non-interactively; raise ``GpgError`` on failure."""
        cmd = [
            "gpg",
            "--homedir",
            str(self.path),
            "--batch",
            "--yes",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            *args,
        ]
        env = {**os.environ, "GNUPGHOME": str(self.path)}
        result = subprocess.run(cmd, input=input, capture_output=True, env=env, timeout=120)
        if check and result.returncode != 0:
            raise GpgError(
                f"gpg {' '.join(args[:3])} failed ({result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()}"
            )
        return result

    def generate_key(
        self,
        uid: str,
        *,
        algo: str = "rsa3072",
        expire: str = "1y",
        subkey_expire: str | None = None,
        encryption_subkey: bool = True,
        created: datetime | None = None,
    ) -> str:
        """Make a key pair: a sign/certify primary plus (by default) an encryption subkey.

        Args:
            uid: User id, e.g. ``"SYP (test) <syp@example.invalid>"``.
            algo: One of ``ALGORITHMS`` (``rsa3072``, ``cv25519``, ``rsa2048``, ...).
            expire: gpg expiry: ``"1y"``, ``"2d"``, ``"2030-01-01"``, or ``"0"`` for never.
            subkey_expire: Expiry of the encryption subkey; defaults to ``expire``.
            encryption_subkey: ``False`` makes a sign-only key (no way to encrypt to it).
            created: Pretend the key was made at this time (gpg's ``--faked-system-time``),
                which is how a test gets a key that has already expired.

        Returns:
            The primary key's fingerprint (40 hex digits, upper case).
        """
        primary, sub = ALGORITHMS[algo]
        when = ["--faked-system-time", created.strftime("%Y%m%dT%H%M%S!")] if created else []
        result = self.run(*when, "--status-fd", "1", "--quick-gen-key", uid, primary, "sign,cert", expire)
        fpr = next(
            line.split()[-1] for line in result.stdout.decode().splitlines() if line.startswith("[GNUPG:] KEY_CREATED")
        )
        if encryption_subkey:
            self.run(*when, "--quick-add-key", fpr, sub, "encr", subkey_expire or expire)
        return fpr

    def subkeys(self, fpr: str) -> list[str]:
        """Fingerprints of the key's subkeys, in keyring order."""
        out = self.run("--with-colons", "--fingerprint", "--list-keys", fpr).stdout.decode()
        lines = out.splitlines()
        return [
            lines[i + 1].split(":")[9]
            for i, line in enumerate(lines)
            if line.startswith("sub:") and i + 1 < len(lines) and lines[i + 1].startswith("fpr:")
        ]

    def export_public(self, fpr: str, dest: Path, *, armor: bool = True) -> Path:
        """Write the public key (with any revocations gpg holds) to ``dest``."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.run(*(["--armor"] if armor else []), "--output", str(dest), "--export", fpr)
        if not dest.exists() or dest.stat().st_size == 0:
            raise GpgError(f"gpg exported nothing for {fpr}")
        return dest

    def export_secret(self, fpr: str) -> str:
        """The armoured private key, as a party puts it in its secrets backend (tests and demo only)."""
        return self.run("--armor", "--export-secret-keys", fpr).stdout.decode()

    def import_key(self, path: Path) -> None:
        """Import a public key file (e.g. the sender's, to check its signatures as the recipient would)."""
        self.run("--import", str(path))

    def verify_detached(self, signature: Path, data: Path) -> list[str]:
        """``gpg --verify`` a detached signature; gpg's status lines (see ``signed_by``).

        Raises:
            GpgError: gpg did not report a good signature.
        """
        result = self.run("--status-fd", "2", "--verify", str(signature), str(data), check=False)
        err = result.stderr.decode(errors="replace")
        status = [line[len("[GNUPG:] ") :] for line in err.splitlines() if line.startswith("[GNUPG:] ")]
        if result.returncode != 0 or signed_by(status) is None:
            raise GpgError(f"gpg --verify {signature} ({result.returncode}): {err.strip()}")
        return status

    def revoke(self, fpr: str, dest: Path | None = None) -> Path | None:
        """Revoke the whole key and, with ``dest``, export it with the revocation.

        gpg writes a revocation certificate for every key it makes; it is
        imported here after removing the colon gpg puts in front of its armor
        line to stop it being imported by accident.
        """
        cert = (self.path / "openpgp-revocs.d" / f"{fpr}.rev").read_text()
        cert = cert.replace(":-----BEGIN PGP PUBLIC KEY BLOCK-----", "-----BEGIN PGP PUBLIC KEY BLOCK-----")
        self.run("--import", input=cert.encode())
        return self.export_public(fpr, dest) if dest else None

    def revoke_subkey(self, fpr: str, index: int = 1) -> None:
        """Revoke subkey number ``index`` (1 = the first) through ``--edit-key``."""
        # No --quick-* command revokes a subkey in gpg 2.2; --command-fd answers the prompts.
        answers = f"key {index}\nrevkey\ny\n0\n\ny\nsave\n"
        self.run("--command-fd", "0", "--edit-key", fpr, input=answers.encode())

    def decrypt_with_status(self, path: Path) -> tuple[bytes, list[str]]:
        """Decrypt ``path`` as the recipient would; return the plaintext and gpg's status lines.

        Raises:
            GpgError: gpg refused the file (tampered, not integrity protected, wrong key);
                the message holds gpg's stderr.
        """
        result = self.run("--status-fd", "2", "--decrypt", "--output", "-", str(path), check=False)
        err = result.stderr.decode(errors="replace")
        status = [line[len("[GNUPG:] ") :] for line in err.splitlines() if line.startswith("[GNUPG:] ")]
        # gpg 2.2 already fails without an MDC; insist on it anyway so an older or
        # differently configured gpg cannot make a test pass on an unprotected file.
        info = next((s.split() for s in status if s.startswith("DECRYPTION_INFO")), None)
        if result.returncode != 0 or "DECRYPTION_OKAY" not in status or info is None or info[1] == "0":
            raise GpgError(f"gpg refused {path} ({result.returncode}): {err.strip()}")
        return result.stdout, status

    def decrypt(self, path: Path) -> bytes:
        """The plaintext of ``path``; see ``decrypt_with_status``."""
        return self.decrypt_with_status(path)[0]

    def close(self) -> None:
        """Stop the gpg-agent this home started (best effort)."""
        subprocess.run(
            ["gpgconf", "--homedir", str(self.path), "--kill", "gpg-agent"],
            capture_output=True,
            check=False,
            timeout=30,
        )
