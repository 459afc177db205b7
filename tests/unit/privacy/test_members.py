"""The register's compact forms: 16-byte lookup tokens, raw pseudonyms, and sets of ids as blocks."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from transfers.privacy import members


def test_a_lookup_token_is_the_first_half_of_its_digest_and_any_other_text_still_gets_one():
    digest = hashlib.sha256(b"x").hexdigest()
    assert members.token(digest) == bytes.fromhex(digest)[:16]
    assert len(members.token("not-a-digest")) == 16
    assert members.token("not-a-digest") == members.token("not-a-digest") != members.token("other")


@pytest.mark.parametrize("pseudonym", [
    hashlib.sha256(b"a").hexdigest(), None, "p1", "x" * 31, "y" * 32, "z" * 64,
    hashlib.sha256(b"b").hexdigest().upper(),  # not the form a pseudonym is sent in: kept as text
])
def test_pseudonyms_read_back_exactly_as_written(pseudonym):
    stored = members.encode_pseudonym(pseudonym)
    assert members.decode_pseudonym(stored) == pseudonym
    assert (len(stored) == 32) == (pseudonym is not None and pseudonym == pseudonym.lower() and len(pseudonym) == 64
                                   and pseudonym != "z" * 64)


def test_a_digest_pseudonym_costs_32_bytes_and_sorts_as_its_hex_does():
    hexes = sorted(hashlib.sha256(bytes([i])).hexdigest() for i in range(50))
    stored = [members.encode_pseudonym(h) for h in hexes]
    assert {len(s) for s in stored} == {32}
    assert sorted(stored) == stored


@pytest.mark.parametrize("ids", [
    [0, 5, 4095, 4096, 9000],  # sparse: arrays of offsets
    list(range(10_000, 14_000)),  # dense: bitmaps
    [7, 7, 3],  # repeated ids count once
])
def test_id_sets_round_trip_through_their_blocks(ids):
    blocks = [(block, members.encode(part)) for block, part in members.split(np.array(ids))]
    back = np.concatenate([members.unpack(block, data) for block, data in blocks])
    assert back.tolist() == sorted(set(ids))
    assert members.count(blocks) == len(set(ids))
    for block, data in blocks:
        assert all(members.holds(block, data, i) == (i in ids) for i in range(block << 12, (block + 1) << 12))


def test_a_full_block_is_a_bitmap_of_512_bytes_and_merging_adds_each_id_once():
    [(block, data)] = list((b, members.encode(p)) for b, p in members.split(np.arange(4096)))
    assert len(data) == 1 + 512
    [(block, few)] = list((b, members.encode(p)) for b, p in members.split(np.array([1, 2])))
    assert len(few) == 1 + 4
    merged = members.merge(block, few, np.array([2, 3]))
    assert members.unpack(block, merged).tolist() == [1, 2, 3]


def test_many_pseudonyms_encode_as_each_would_alone():
    digests = [hashlib.sha256(bytes([i])).hexdigest() for i in range(5)]
    mixed = [*digests, None, "p1", digests[0].upper(), "g" * 64]
    for pseudonyms in (digests, mixed, [digests[0].upper()], ["g" * 64], [], [" " + digests[0][1:]]):
        assert members.encode_pseudonyms(pseudonyms) == [members.encode_pseudonym(p) for p in pseudonyms]
