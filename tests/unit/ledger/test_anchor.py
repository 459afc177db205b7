"""Truncation, emptying, deletion and rehashing of a SQLite ledger, caught by heads kept outside it.

The anchor file beside the ledger is rewritten with it in every case, so it
proves nothing; what catches each attack is a head held elsewhere: an external
anchor file (standing in for another volume: no second volume exists here) or
the ``ledger_head`` of delivery manifests passed to ``verify``.
"""

from __future__ import annotations

import json

import pytest

from tests import ledger_tamper
from transfers.errors import ConfigError
from transfers.ledger import Ledger
from transfers.ledger.anchor import FileAnchor, open_anchor


@pytest.fixture
def paths(tmp_path):
    db = tmp_path / "home" / "ledger.db"
    db.parent.mkdir()
    return f"sqlite:///{db}", db, tmp_path / "home" / "ledger.head", tmp_path / "other-volume" / "ledger.head"


def open_ledger(paths) -> Ledger:
    url, _db, anchor, external = paths
    return Ledger(url, anchor_path=anchor, external_anchor=FileAnchor(external))


def fill(paths, n: int) -> list:
    with open_ledger(paths) as ledger:
        return [ledger.append("quality", agreement="mash", flow="mash.A", payload={"i": i})[0] for i in range(n)]


def verify(paths, heads=()) -> list[str]:
    with open_ledger(paths) as ledger:
        return ledger.verify(heads=heads).problems


def test_each_append_writes_the_external_anchor_too(paths):
    entries = fill(paths, 3)
    data = json.loads(paths[3].read_text())
    assert (data["seq"], data["hash"]) == (3, entries[-1].hash)
    assert verify(paths) == []


def test_truncated_ledger_with_its_anchor_rewritten_is_caught_by_the_external_anchor(paths):
    fill(paths, 5)
    ledger_tamper.truncate(paths[1], paths[2], keep=3)
    with Ledger(paths[0], anchor_path=paths[2]) as local_only:
        assert local_only.verify().ok  # the anchor beside it was rewritten: it cannot tell

    assert verify(paths) == [f"ledger ends at entry 3 but external anchor {paths[3]} says 5 (entries cut off the end?)"]


def test_emptied_ledger_and_deleted_anchor_are_caught(paths):
    entries = fill(paths, 4)
    ledger_tamper.delete_all(paths[1], paths[2])

    problems = verify(paths, heads=[(2, entries[1].hash, "archived manifest m.json", "manifests")])

    assert problems == [
        "ledger ends at entry 0 but archived manifest m.json says 2 (entries cut off the end?)",
        f"ledger ends at entry 0 but external anchor {paths[3]} says 4 (entries cut off the end?)",
    ]


def test_deleted_database_and_anchor_are_caught(paths):
    fill(paths, 4)
    ledger_tamper.delete_database(paths[1], paths[2])

    assert verify(paths) == [f"ledger ends at entry 0 but external anchor {paths[3]} says 4 (entries cut off the end?)"]


def test_consistently_rehashed_ledger_is_caught_by_every_head_recorded_outside(paths):
    entries = fill(paths, 5)
    ledger_tamper.rehash(paths[1], paths[2], edit_seq=2)
    with Ledger(paths[0], anchor_path=paths[2]) as local_only:
        assert local_only.verify().ok  # chain and local anchor agree: only outside heads can tell

    problems = verify(paths, heads=[(3, entries[2].hash, "archived manifest a.json", "manifests"),
                                    (4, entries[3].hash, "archived manifest b.json", "manifests")])

    assert problems == [
        "entry 3: hash differs from the one in archived manifest a.json (the ledger was rewritten from here on?) "
        "(and 1 more head(s) from the same place)",
        f"entry 5: hash differs from the one in external anchor {paths[3]} (the ledger was rewritten from here on?)",
    ]


def test_a_missing_external_anchor_is_reported_when_the_ledger_has_entries(paths):
    fill(paths, 2)
    paths[3].unlink()
    assert verify(paths) == [f"external anchor {paths[3]} holds no head but the ledger has 2 entries "
                             f"(deleted, or never written: check the anchor's place and the append log)"]


@pytest.mark.parametrize("value", ["relative/ledger.head", "https://example.invalid/head", "s3://bucket", "s3://b/"])
def test_an_anchor_url_that_is_neither_a_path_nor_an_object_is_a_config_error(value):
    with pytest.raises(ConfigError, match="TRANSFERS_LEDGER_ANCHOR_URL"):
        open_anchor(value)
