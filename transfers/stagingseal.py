"""The sealed file format of a staging part: AES-256-GCM chunks bound to the part's name, order and count.

Its own module so the format can be read (and checked) apart from the staging that uses it.
"""

from __future__ import annotations

import os
import struct
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["SealError", "seal", "unseal"]

_MAGIC = b"TRSTAGE1"
_CHUNK = 4 << 20
_HEAD = struct.Struct(">8s16sQ")  # magic, HKDF salt, plaintext length
_CHUNK_HEAD = struct.Struct(">BI12s")  # kind, ciphertext length, nonce
_DATA, _FINAL = 0, 1
_FINAL_BODY = struct.Struct(">QQ")  # data chunks, plaintext length


class SealError(Exception):
    """A staging part that does not open: wrong key, altered, cut short, or not one of ours."""


def _file_key(master: bytes, salt: bytes) -> AESGCM:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    # A fresh salt per file gives each file its own key, so random nonces never meet across files.
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"transfers staging part v1").derive(master)
    return AESGCM(key)


def _aad(head: bytes, label: bytes, index: int, kind: int) -> bytes:
    return head + struct.pack(">QB", index, kind) + label


def seal(master: bytes, plain: memoryview, out: IO[bytes], label: bytes) -> None:
    """Write ``plain`` to ``out`` as AES-256-GCM chunks bound to ``label``, their order and their count.

    Each chunk has a fresh 96-bit nonce; the file's header, the chunk's index and kind and
    ``label`` are its associated data; a final chunk carries the count and the length, so a
    file cut at a chunk boundary is told from a whole one.
    """
    head = _HEAD.pack(_MAGIC, os.urandom(16), len(plain))
    aead = _file_key(master, head[8:24])
    out.write(head)
    index = 0
    for start in range(0, len(plain), _CHUNK):
        _write_chunk(out, aead, _aad(head, label, index, _DATA), _DATA, plain[start : start + _CHUNK])
        index += 1
    _write_chunk(out, aead, _aad(head, label, index, _FINAL), _FINAL, _FINAL_BODY.pack(index, len(plain)))


def _write_chunk(out: IO[bytes], aead: AESGCM, aad: bytes, kind: int, data: bytes | memoryview) -> None:
    nonce = os.urandom(12)
    sealed = aead.encrypt(nonce, data, aad)
    out.write(_CHUNK_HEAD.pack(kind, len(sealed), nonce))
    out.write(sealed)


def unseal(master: bytes, src: IO[bytes], label: bytes) -> bytearray:
    """The plaintext :func:`seal` wrote under ``label``; ``SealError`` saying why if it does not open."""
    head = src.read(_HEAD.size)
    if len(head) < _HEAD.size or head[:8] != _MAGIC:
        raise SealError("not a staging part of this version")
    _magic, salt, length = _HEAD.unpack(head)
    if length > os.fstat(src.fileno()).st_size:
        raise SealError("its header was altered")  # never allocate what a tampered header asks for
    aead = _file_key(master, salt)
    plain = bytearray(length)
    view = memoryview(plain)
    at = index = 0
    while True:
        chunk_head = src.read(_CHUNK_HEAD.size)
        if len(chunk_head) < _CHUNK_HEAD.size:
            raise SealError(f"it ends after chunk {index} without its final marker (cut short)")
        kind, size, nonce = _CHUNK_HEAD.unpack(chunk_head)
        if kind not in (_DATA, _FINAL) or not 16 <= size <= _CHUNK + 16:
            raise SealError(f"chunk {index} was altered")
        sealed = src.read(size)
        if len(sealed) < size:
            raise SealError(f"chunk {index} is cut short")
        aad = _aad(head, label, index, kind)
        try:
            if kind == _FINAL:
                count, total = _FINAL_BODY.unpack(aead.decrypt(nonce, sealed, aad))
                break
            if at + size - 16 > length:
                raise SealError(f"chunk {index} runs past the part's length")
            aead.decrypt_into(nonce, sealed, aad, view[at : at + size - 16])
        except (InvalidTag, struct.error):
            raise SealError(f"chunk {index} does not authenticate") from None
        at += size - 16
        index += 1
    if (count, total) != (index, at) or at != length or src.read(1):
        raise SealError("its chunks do not add up to the part that was written")
    return plain
