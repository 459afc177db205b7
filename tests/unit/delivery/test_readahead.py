"""``read_chunks``: a remote file read whole, in order, with a bounded number of reads in flight."""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from paramiko.sftp import CMD_READ

from tests.support.sftp_fake import FakeSftp
from transfers.delivery import open_sftp
from transfers.delivery.readahead import CHUNK, WINDOW, read_chunks

MB = 1024 * 1024


def test_a_file_without_a_wire_is_read_to_its_end_in_order():
    sftp = FakeSftp()
    sftp.files["inbound/x"] = data = os.urandom(3 * CHUNK + 17)
    with sftp.open("inbound/x", "rb") as fh:
        assert b"".join(read_chunks(fh)) == data


@pytest.fixture
def remote(sshd) -> Iterator[tuple[object, Path, str]]:
    """An open session on the shared sshd, the local directory behind its ``remote_dir``, and that directory."""
    name = f"readahead-{uuid.uuid4().hex[:8]}"
    (sshd.root / name).mkdir()
    with open_sftp(sshd.target(name)) as session:
        yield session, sshd.root / name, name


def _spy(session) -> dict[str, int]:
    """Counts synchronous reads and the most requests ever outstanding on the session's client."""
    client = session.sftp
    seen = {"sync_reads": 0, "in_flight": 0}
    request, read_response = client._request, client._read_response

    def counting_request(t, *args):
        seen["sync_reads"] += t == CMD_READ
        return request(t, *args)

    def watching_read_response(waitfor=None):
        seen["in_flight"] = max(seen["in_flight"], len(client._expecting))
        return read_response(waitfor)

    client._request, client._read_response = counting_request, watching_read_response
    return seen


@pytest.mark.integration
@pytest.mark.parametrize("size", [0, 1, CHUNK, 12 * MB + 123])
def test_a_remote_file_is_read_whole_with_no_round_trip_per_chunk(remote, size):
    session, local, where = remote
    data = os.urandom(size)
    (local / "f").write_bytes(data)
    seen = _spy(session)
    with session.sftp.open(f"{where}/f", "rb") as fh:
        got = hashlib.sha256(b"".join(read_chunks(fh))).hexdigest()
    assert got == hashlib.sha256(data).hexdigest()
    # One read at the end finds end of file; every other read went ahead, never more than the window.
    assert seen["sync_reads"] == 1
    assert seen["in_flight"] <= WINDOW + 1


@pytest.mark.integration
def test_what_the_file_holds_at_the_end_counts_not_its_size_when_opened(remote):
    session, local, where = remote
    path = local / "f"
    path.write_bytes(first := os.urandom(CHUNK * 3 + 5))
    with session.sftp.open(f"{where}/f", "rb") as fh:
        chunks = read_chunks(fh)
        got = next(chunks)
        with path.open("ab") as grow:  # grows after the stat that sized the read-ahead
            grow.write(more := os.urandom(CHUNK + 9))
        got += b"".join(chunks)
    assert got == first + more
    path.write_bytes(os.urandom(5 * MB))
    with session.sftp.open(f"{where}/f", "rb") as fh:
        chunks = read_chunks(fh)
        got = next(chunks)
        os.truncate(path, 2 * MB + 1)  # shrinks while reads are in flight
        got += b"".join(chunks)
    assert got == path.read_bytes()


@pytest.mark.integration
def test_a_read_abandoned_midway_stops_its_sender_and_leaves_the_session_usable(remote):
    session, local, where = remote
    (local / "f").write_bytes(data := os.urandom(8 * MB))
    with session.sftp.open(f"{where}/f", "rb") as fh:
        chunks = read_chunks(fh)
        next(chunks)
        chunks.close()
    assert not [t for t in threading.enumerate() if t.name == "sftp-read-ahead"]
    with session.sftp.open(f"{where}/f", "rb") as fh:
        assert b"".join(read_chunks(fh)) == data
    assert session.sftp.stat(f"{where}/f").st_size == len(data)
