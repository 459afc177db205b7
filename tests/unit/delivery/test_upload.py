"""``deliver_file``'s rules over an in-memory SFTP server: conflict, reconcile, read-back, temp cleanup.

The same rules run against a real OpenSSH ``sshd`` in ``tests/integration/test_delivery*.py``; here each
fault is made exactly (a lost write, a refused rename, a file appearing at the last moment).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.delivery import deliver_file
from transfers.errors import DeliveryConflict, DeliveryUnavailable
from transfers.files import sha256_size

FINAL, TEMP = "inbound/x.csv.pgp", "inbound/.x.csv.pgp.partial"


@pytest.fixture
def ours(tmp_path: Path) -> Path:
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(os.urandom(100_000))  # several 32 KiB chunks
    return path


def test_a_delivery_lands_whole_under_its_final_name_with_no_temporary_file_left(ours):
    server = FakeSftp()

    receipt = deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert (receipt.remote_path, receipt.status) == (FINAL, "delivered")
    assert (receipt.size, receipt.sha256) == sha256_size(ours)
    assert server.files == {FINAL: ours.read_bytes()}
    assert "inbound" in server.dirs
    assert ("rename", TEMP) in server.calls


def test_a_different_file_under_the_name_is_refused_and_left_alone(ours):
    server = FakeSftp(files={FINAL: b"the recipient's own file"})

    with pytest.raises(DeliveryConflict, match="a different file already sits under this name"):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert server.files == {FINAL: b"the recipient's own file"}
    assert not [c for c in server.calls if c[0] in ("open:wx", "rename", "remove")]


def test_a_different_file_of_the_same_size_is_refused_too(ours):
    theirs = bytes(b ^ 1 for b in ours.read_bytes())
    server = FakeSftp(files={FINAL: theirs})

    with pytest.raises(DeliveryConflict):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert server.files == {FINAL: theirs}


def test_the_identical_file_already_there_is_reconciled_and_not_sent_again(ours):
    server = FakeSftp()
    session = fake_session(server)
    first = deliver_file(session, ours, "x.csv.pgp")
    writes = [c for c in server.calls if c[0] == "open:wx"]

    second = deliver_file(session, ours, "x.csv.pgp")

    assert (first.status, second.status) == ("delivered", "reconciled")
    assert second == first.__class__(first.remote_path, first.size, first.sha256, "reconciled")
    assert [c for c in server.calls if c[0] == "open:wx"] == writes  # uploaded once
    assert server.files == {FINAL: ours.read_bytes()}


def test_a_reconciled_retry_removes_debris_an_earlier_cut_attempt_left(ours):
    server = FakeSftp(files={FINAL: ours.read_bytes(), TEMP: b"half"})

    assert deliver_file(fake_session(server), ours, "x.csv.pgp").status == "reconciled"

    assert server.files == {FINAL: ours.read_bytes()}


def test_an_identical_file_whose_size_the_server_misreports_is_not_taken_for_ours(ours):
    server = FakeSftp(files={FINAL: ours.read_bytes()}, size_skew=1)

    with pytest.raises(DeliveryConflict):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert server.files == {FINAL: ours.read_bytes()}


def test_a_write_lost_in_transit_is_caught_on_read_back_and_never_renamed(ours):
    server = FakeSftp(drop_write=1)

    with pytest.raises(DeliveryUnavailable, match="the uploaded copy does not match"):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert not [c for c in server.calls if c[0] == "rename"]
    assert server.files == {}  # the short temporary file is gone


def test_a_refused_rename_leaves_no_temporary_file(ours):
    server = FakeSftp(fail_rename=True)

    with pytest.raises(DeliveryUnavailable, match="renaming"):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert server.files == {}
    assert ("remove", TEMP) in server.calls


def test_a_file_that_appears_just_before_the_rename_is_not_overwritten(ours):
    server = FakeSftp()
    server.on_rename = lambda: server.files.setdefault(FINAL, b"the recipient's own file")

    with pytest.raises(DeliveryConflict, match="a file appeared under this name during the upload"):
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert server.files == {FINAL: b"the recipient's own file"}


def test_a_temporary_file_left_by_a_cut_attempt_is_replaced_not_appended_to(ours):
    server = FakeSftp(files={TEMP: b"half of an earlier attempt"})

    assert deliver_file(fake_session(server), ours, "x.csv.pgp").status == "delivered"

    assert server.files == {FINAL: ours.read_bytes()}


def test_a_server_that_copies_on_rename_has_the_landed_file_compared_by_content(ours):
    server = FakeSftp(copy_on_rename=True)

    assert deliver_file(fake_session(server), ours, "x.csv.pgp").status == "delivered"

    renamed = server.calls.index(("rename", TEMP))
    assert ("open:rb", FINAL) in server.calls[renamed:]  # mtime changed: the bytes were read back
