"""The compact forms the subject register stores: lookup tokens, raw pseudonyms, sets of subject ids.

A subject's lookup and pseudonym are HMAC-SHA256 digests shown as 64 hex characters; stored as
text they cost 128 bytes a row before any index. Here a lookup is kept as a 16-byte token (the
first half of its digest: still a keyed 128-bit value, with no collision to expect among billions
of subjects) and a pseudonym as its 32 raw bytes. A set of subjects (one prepare step's, one
exclusion's) is a set of small integer subject ids, kept as one row per block of
:data:`BLOCK` consecutive ids: a sorted array of 2-byte offsets while the block is sparse, a
bitmap of :data:`BLOCK` bits once that is smaller. So a night that sends a known cohort costs a
bit or two per subject, and finding one subject's sets reads one block row per set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

import numpy as np

BITS = 12
BLOCK = 1 << BITS  # ids per block row
_BITMAP_BYTES = BLOCK // 8
_ARRAY, _BITMAP = b"A", b"B"
TOKEN_BYTES = 16


def token(lookup: str) -> bytes:
    """The stored form of a lookup (64 hex characters) or of any other text used as one."""
    try:
        raw = bytes.fromhex(lookup)
    except ValueError:
        raw = b""
    if len(raw) < TOKEN_BYTES:  # not a digest (hand-written in a test): a stable token all the same
        raw = hashlib.sha256(lookup.encode()).digest()
    return raw[:TOKEN_BYTES]


def encode_pseudonym(pseudonym: str | None) -> bytes:
    """A pseudonym as stored: 32 raw bytes for a hex digest, b"" for none, else marked text.

    Text that is not a digest is kept whole, framed by NULs so its length is never 32
    and it can never read back as a digest.
    """
    if pseudonym is None:
        return b""
    if len(pseudonym) == 64:
        try:
            raw = bytes.fromhex(pseudonym)
        except ValueError:
            raw = b""
        if len(raw) == 32 and raw.hex() == pseudonym:
            return raw
    if "\x00" in pseudonym:
        raise ValueError("a pseudonym cannot hold a NUL character")
    framed = b"\x00" + pseudonym.encode("utf-8")
    return framed + b"\x00" if len(framed) == 32 else framed


def encode_pseudonyms(pseudonyms: list[str | None]) -> list[bytes]:
    """:func:`encode_pseudonym` of each; hex digests (as apply_privacy makes them) decoded in one pass."""
    if pseudonyms and all(isinstance(p, str) and len(p) == 64 for p in pseudonyms):
        text = "".join(pseudonyms)  # type: ignore[arg-type]  # all str: checked above
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = b""
        # Upper-case hex would decode too, but is text kept whole, not a digest.
        if len(raw) == 32 * len(pseudonyms) and raw.hex() == text:
            return [raw[i:i + 32] for i in range(0, len(raw), 32)]
    return [encode_pseudonym(p) for p in pseudonyms]


def decode_pseudonym(stored: bytes | memoryview | None) -> str | None:
    if stored is None:
        return None
    data = bytes(stored)
    if not data:
        return None
    if len(data) == 32:
        return data.hex()
    return data.strip(b"\x00").decode("utf-8")


def distinct(ids: np.ndarray) -> np.ndarray:
    """The ids sorted, each once.

    Not np.unique: since numpy 2.3 it hashes first, about ten times slower on the mostly sorted
    ids a register batch holds; a stable sort of sorted input is one linear pass.
    """
    ids = np.sort(np.asarray(ids, dtype=np.int64), kind="stable")
    if len(ids) < 2:
        return ids
    keep = np.empty(len(ids), dtype=bool)
    keep[0] = True
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    return ids[keep]


def split(ids: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(block, the ids in it) for each block the ids fall in (ids need not be sorted or distinct)."""
    ids = distinct(ids)
    if not len(ids):
        return
    bounds = np.flatnonzero(np.diff(ids >> BITS)) + 1
    for part in np.split(ids, bounds):
        yield int(part[0] >> BITS), part


def encode(ids: np.ndarray) -> bytes:
    """The stored form of ids that all fall in one block."""
    return _encode((np.asarray(ids, dtype=np.int64) & (BLOCK - 1)).astype(np.uint16))


def _encode(offsets: np.ndarray) -> bytes:
    if len(offsets) * 2 < _BITMAP_BYTES:
        return _ARRAY + offsets.astype("<u2").tobytes()
    bits = np.zeros(BLOCK, dtype=np.uint8)
    bits[offsets] = 1
    return _BITMAP + np.packbits(bits, bitorder="little").tobytes()


def unpack(block: int, stored: bytes | memoryview) -> np.ndarray:
    """The subject ids held by one block row, sorted."""
    data = bytes(stored)
    if data[:1] == _ARRAY:
        offsets = np.frombuffer(data, dtype="<u2", offset=1).astype(np.int64)
    else:
        bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, offset=1), bitorder="little")
        offsets = np.flatnonzero(bits).astype(np.int64)
    return offsets + (block << BITS)


def merge(block: int, stored: bytes | memoryview, ids: np.ndarray) -> bytes:
    """One block row with more ids added (those already in it count once)."""
    return encode(distinct(np.concatenate([unpack(block, stored), np.asarray(ids, dtype=np.int64)])))


def holds(block: int, stored: bytes | memoryview, subject_id: int) -> bool:
    if subject_id >> BITS != block:
        return False
    offset = subject_id & (BLOCK - 1)
    data = bytes(stored)
    if data[:1] == _ARRAY:
        offsets = np.frombuffer(data, dtype="<u2", offset=1)
        at = int(np.searchsorted(offsets, offset))
        return at < len(offsets) and int(offsets[at]) == offset
    return bool(data[1 + offset // 8] >> (offset % 8) & 1)


def count(stored: Iterable[tuple[int, bytes]]) -> int:
    return sum(len(unpack(block, data)) for block, data in stored)
