"""Read OpenPGP key bytes into pgpy keys, within a size and a time limit; pick the pinned key of several.

pgpy's parser is pure Python and runs on files partners send us, so a file over
``MAX_KEY_BYTES`` is refused unread and a parse over ``PARSE_TIMEOUT_SECONDS``
is abandoned (``KeyRefused``). A file of appended armour blocks is split and each
block parsed. A refusal names the file and the parser's error type, never the
parser's text (it may quote bytes of the file).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pgpy

from transfers.crypto.pgpy_warnings import quiet_pgpy
from transfers.errors import KeyRefused

__all__ = ["MAX_KEY_BYTES", "PARSE_TIMEOUT_SECONDS", "fingerprint_of", "parse", "parse_bytes"]

#: A public key with a few subkeys and certifications is a few KB; anything this
#: big is not a key we should spend time parsing.
MAX_KEY_BYTES = 1024 * 1024
#: pgpy's parser is pure Python; a crafted file must not hang a task.
PARSE_TIMEOUT_SECONDS = 10.0


def parse(path: Path, pinned: str | None, data: bytes | None = None) -> Any:
    """Read and parse a public key file, with a size and a time limit; the pinned key if it holds several.

    ``data``: the file's key, already read (a worker process is handed it, not the file).
    """
    try:
        size = path.stat().st_size if data is None else len(data)
        if size > MAX_KEY_BYTES:
            raise KeyRefused(
                f"key file {path}: {size} bytes is too large for a public key "
                f"(limit {MAX_KEY_BYTES}); is this the right file?"
            )
        if data is None:
            data = path.read_bytes()
    except OSError as exc:
        raise KeyRefused(f"key file {path}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    key = parse_bytes(data, f"key file {path}", pinned)
    if not key.is_public:
        raise KeyRefused(
            f"key file {path}: holds a PRIVATE key; it must not be used or kept. Delete it, ask the "
            "recipient for their public key only, and tell them their private key was disclosed"
        )
    return key


def parse_bytes(data: bytes, where: str, pinned: str | None, kind: str = "public key") -> Any:
    """Parse key bytes in a daemon thread with a time limit; pick the ``pinned`` primary if several."""
    if len(data) > MAX_KEY_BYTES:
        raise KeyRefused(f"{where}: {len(data)} bytes is too large for a key (limit {MAX_KEY_BYTES})")
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            # pgpy reads one armour block; a file made by appending one partner's keys holds several.
            result["value"] = [pgpy.PGPKey.from_blob(blob) for blob in _armour_blocks(data)]
        except Exception as exc:  # any parser failure means "not a key we can use"
            result["error"] = exc

    # A daemon thread: if the parser never returns we give up on it, and it
    # cannot keep the process alive at exit (a thread cannot be killed).
    worker = threading.Thread(target=work, name="pgp-parse", daemon=True)
    # Quietened here, not in the thread: warnings' filters are process-wide, and a parse left running
    # past its limit would otherwise restore them whenever it ended, undoing whatever was set meanwhile.
    with quiet_pgpy():
        worker.start()
        worker.join(PARSE_TIMEOUT_SECONDS)
    if worker.is_alive():
        raise KeyRefused(
            f"{where}: parsing took longer than {PARSE_TIMEOUT_SECONDS:g}s; it is not a normal {kind}"
        )
    if "error" in result:
        # The parser's own text may quote bytes of the file; name its type only.
        raise KeyRefused(
            f"{where}: not a readable OpenPGP {kind} "
            f"({type(result['error']).__name__}); expected an armored or binary {kind}"
        )
    primaries = []
    for key, others in result["value"]:
        if key.fingerprint is None:  # pgpy "parses" some garbage into an empty key
            raise KeyRefused(
                f"{where}: not a readable OpenPGP {kind} (no key packet found); "
                f"expected an armored or binary {kind}"
            )
        primaries += [k for k in others.values() if k.is_primary] or [key]
    key = primaries[0]
    if len(primaries) > 1:
        # One file may hold a partner's encryption and signing keys: the pin says which one is meant.
        chosen = next((k for k in primaries if fingerprint_of(k) == pinned), None)
        if chosen is None:
            found = ", ".join(fingerprint_of(k) for k in primaries)
            raise KeyRefused(f"{where}: holds {len(primaries)} keys ({found}), none of them the pinned {pinned}")
        return chosen
    return key


def _armour_blocks(data: bytes) -> list[bytes]:
    """Each ASCII-armoured block of ``data`` (one or more), or ``data`` itself when it is binary."""
    begin, end = b"-----BEGIN PGP ", b"-----END PGP "
    if data.count(begin) < 2:
        return [data]
    blocks, rest = [], data
    while (start := rest.find(begin)) >= 0:
        stop = rest.find(end, start)
        if stop < 0:
            blocks.append(rest[start:])
            break
        line_end = rest.find(b"\n", stop)
        stop = len(rest) if line_end < 0 else line_end + 1
        blocks.append(rest[start:stop])
        rest = rest[stop:]
    return blocks


def fingerprint_of(key: Any) -> str:
    return str(key.fingerprint).replace(" ", "").upper()
