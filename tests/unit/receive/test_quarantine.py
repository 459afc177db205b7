"""Quarantine keeps a rejected delivery's files as received, with the reason, and never overwrites evidence."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from datetime import datetime
from pathlib import Path

import pytest

from transfers.receive import quarantine as quarantine_module
from transfers.receive.quarantine import REASON_FILE, quarantine

BASE = "dsa-1_referrals_2026-11-25"
DELIVERY = "dsa-1:referrals:2026-11-25:leeds"


def received(inbox: Path, *, with_manifest_signature: bool = True) -> list[Path]:
    """A delivery as it sits in the inbox: encrypted parts (opaque bytes here), manifest and its signature."""
    inbox.mkdir(parents=True, exist_ok=True)
    files = {f"{BASE}.part-0001.csv.pgp": os.urandom(3000), f"{BASE}.part-0002.csv.pgp": os.urandom(17),
             f"{BASE}.manifest.json": b'{"format": 2}\n', f"{BASE}.manifest.json.asc": b"signature bytes\n"}
    paths = []
    for name, data in files.items():
        path = inbox / name
        if name.endswith(".asc") and not with_manifest_signature:
            paths.append(path)  # listed, never arrived
            continue
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_files_are_moved_unchanged_with_a_reason_beside_them(tmp_path):
    inbox, dest = tmp_path / "inbox", tmp_path / "home" / "quarantine" / "dsa-1" / "referrals" / "2026-11-25" / "bradford"
    files = received(inbox)
    before = {p.name: (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}

    folder = quarantine(files, dest, reason="part 2: SHA-256 differs from the manifest", delivery_id=DELIVERY,
                        manifest_sha256="c" * 64)

    assert folder == dest
    assert not any(p.exists() for p in files)  # moved out of the inbox: no later run picks them up
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(p.name for p in folder.iterdir()) == sorted([*before, REASON_FILE])
    for name, (_size, digest) in before.items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest  # still as received: encrypted
    document = json.loads((folder / REASON_FILE).read_text())
    assert document["delivery_id"] == DELIVERY
    assert document["reason"] == "part 2: SHA-256 differs from the manifest"
    assert document["manifest_sha256"] == "c" * 64
    assert datetime.fromisoformat(document["quarantined_at"]).tzinfo is not None
    assert document["files"] == [{"name": name, "size": size, "sha256": digest}
                                 for name, (size, digest) in before.items()]
    assert stat.S_IMODE((folder / REASON_FILE).stat().st_mode) == 0o600


def test_files_that_never_arrived_are_skipped(tmp_path):
    files = received(tmp_path / "inbox", with_manifest_signature=False)
    folder = quarantine(files, tmp_path / "q" / "d", reason="manifest is not signed", delivery_id=DELIVERY,
                        manifest_sha256=None)
    document = json.loads((folder / REASON_FILE).read_text())
    assert [f["name"] for f in document["files"]] == [p.name for p in files[:3]]
    assert document["manifest_sha256"] is None


def test_a_second_quarantine_in_the_same_place_keeps_the_first(tmp_path):
    dest = tmp_path / "q" / "bradford"
    first = quarantine(received(tmp_path / "inbox"), dest, reason="first", delivery_id=DELIVERY, manifest_sha256=None)
    second = quarantine(received(tmp_path / "inbox"), dest, reason="second", delivery_id=DELIVERY, manifest_sha256=None)
    third = quarantine(received(tmp_path / "inbox"), dest, reason="third", delivery_id=DELIVERY, manifest_sha256=None)

    assert (first, second, third) == (dest, dest.with_name("bradford.2"), dest.with_name("bradford.3"))
    assert [json.loads((f / REASON_FILE).read_text())["reason"] for f in (first, second, third)] == [
        "first", "second", "third"]
    assert len(list(first.iterdir())) == 5


def test_a_move_across_filesystems_copies_whole_before_the_inbox_copy_goes(tmp_path, monkeypatch):
    files = received(tmp_path / "inbox")
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]

    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(quarantine_module.os, "rename", cross_device)
    folder = quarantine(files, tmp_path / "q" / "d", reason="r", delivery_id=DELIVERY, manifest_sha256=None)

    assert not any(p.exists() for p in files)
    assert [hashlib.sha256((folder / p.name).read_bytes()).hexdigest() for p in files] == digests
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("names", [["a.pgp", "a.pgp"], ["reason.json"]])
def test_names_that_would_overwrite_evidence_are_refused_before_anything_moves(tmp_path, names):
    files = []
    for n, name in enumerate(names):
        (tmp_path / f"in{n}").mkdir()
        path = tmp_path / f"in{n}" / name
        path.write_bytes(b"x")
        files.append(path)
    with pytest.raises(ValueError, match="unique"):
        quarantine(files, tmp_path / "q", reason="r", delivery_id=DELIVERY, manifest_sha256=None)
    assert all(p.exists() for p in files) and not (tmp_path / "q").exists()


def test_the_manifests_destroy_by_is_kept_when_given_and_null_when_not(tmp_path):
    from datetime import date

    home = tmp_path / "home" / "quarantine" / "dsa-1" / "referrals" / "2026-11-25"
    signed = quarantine(received(tmp_path / "a"), home / "bradford", reason="part 2: SHA-256 differs",
                        delivery_id=DELIVERY, manifest_sha256="c" * 64, destroy_by=date(2032, 11, 25))
    unread = quarantine(received(tmp_path / "b"), home / "leeds", reason="manifest: not signed by the sender",
                        delivery_id=DELIVERY, manifest_sha256=None)

    assert json.loads((signed / REASON_FILE).read_text())["destroy_by"] == "2032-11-25"
    assert json.loads((unread / REASON_FILE).read_text())["destroy_by"] is None
