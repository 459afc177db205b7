"""transfers.files: atomic writes never collide and leave a file whole or absent; private folders; hashes."""

from __future__ import annotations

import hashlib
import stat
import threading
from datetime import date
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from transfers.files import AtomicFile, atomic_file, private_dir, sha256_file, sha256_size, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_two_attempts_writing_the_same_path_at_once_use_different_temporary_files(tmp_path):
    target = tmp_path / "manifest.json"
    first, second = AtomicFile(target), AtomicFile(target)
    assert first.tmp != second.tmp
    first.fh.write(b"first attempt")
    second.fh.write(b"second attempt")
    first.commit()
    second.commit()
    assert target.read_bytes() == b"second attempt"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_concurrent_atomic_writes_never_collide_and_the_file_is_always_one_whole_write(tmp_path):
    target = tmp_path / "part-00001.csv.fernet"
    contents = [bytes([65 + n]) * (256 * 1024) for n in range(6)]
    errors: list[BaseException] = []
    seen: set[bytes] = set()

    def writer(data: bytes) -> None:
        try:
            for _ in range(15):
                write_atomic(target, data)
                seen.add(target.read_bytes())
        except BaseException as exc:  # collected to fail the test with the cause
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(data,)) for data in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert seen <= set(contents)  # every read saw one whole write, never a mix or a cut-short one
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


def test_a_write_cut_short_leaves_no_file_and_keeps_the_old_one(tmp_path):
    fresh, old = tmp_path / "fresh.bin", tmp_path / "old.bin"
    old.write_bytes(b"the whole old file")
    for target in (fresh, old):
        with pytest.raises(OSError, match="disk went away"), atomic_file(target) as fh:
            fh.write(b"half of the ne")
            raise OSError("disk went away")
    assert not fresh.exists()
    assert old.read_bytes() == b"the whole old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]


def test_written_files_are_owner_only_unless_told(tmp_path):
    write_atomic(tmp_path / "secret.bin", b"x")
    write_atomic(tmp_path / "suite.json", "{}", mode=0o644)
    assert _mode(tmp_path / "secret.bin") == 0o600
    assert _mode(tmp_path / "suite.json") == 0o644
    assert (tmp_path / "suite.json").read_text() == "{}"


def test_private_dir_makes_missing_folders_owner_only(tmp_path):
    made = private_dir(tmp_path / "a" / "b")
    assert made == tmp_path / "a" / "b"
    assert _mode(tmp_path / "a") == 0o700
    assert _mode(tmp_path / "a" / "b") == 0o700


def test_file_hashes_match_hashlib(tmp_path):
    path = tmp_path / "f"
    data = b"0123456789" * 300_000  # more than one read chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_size(path) == (len(data), hashlib.sha256(data).hexdigest())


# Callers that used a fixed ".<name>.tmp": another attempt's temporary file must be left alone.


def _other_attempts_tmp(path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"another attempt, half written")
    return tmp


def test_staging_does_not_write_over_another_attempts_temporary_file(tmp_path):
    from transfers.staging import Staging

    staging = Staging(tmp_path, Fernet.generate_key())
    other = _other_attempts_tmp(tmp_path / "state.json.fernet")
    staging.write_json("state", {"rows": 3})
    assert other.read_bytes() == b"another attempt, half written"
    assert staging.read_json("state") == {"rows": 3}


def test_the_running_marker_does_not_write_over_another_attempts_temporary_file(tmp_path):
    import os

    from transfers.retention.running import mark_running, marker_path

    path = marker_path(tmp_path, "agr", "A", date(2026, 1, 2).isoformat())
    other = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # the old name: same pid, same name
    other.parent.mkdir(parents=True)
    other.write_bytes(b"another attempt, half written")
    mark_running(tmp_path, "agr", "A", "2026-01-02")
    assert other.read_bytes() == b"another attempt, half written"
    assert _mode(path) == 0o600
