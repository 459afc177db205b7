"""``deliver_file``'s rules over an in-memory SFTP server: conflict, reconcile, read-back, temp cleanup.

The same rules run against a real OpenSSH ``sshd`` in ``tests/integration/test_delivery*.py``; here each
fault is made exactly (a lost write, a refused rename, a file appearing at the last moment).
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest

from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.delivery import deliver_file
from transfers.errors import DeliveryConflict, DeliveryRefused, DeliveryUnavailable
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


# Upload and verify modes (the agreement's recipient upload: / verify:). The same modes run against real
# sshd servers behaving each way in tests/integration/test_delivery_modes.py.


def test_a_size_check_never_reads_and_a_lost_write_is_still_caught(ours):
    server = FakeSftp(deny_read=True, drop_write=1)

    with pytest.raises(DeliveryUnavailable, match="the server reports 67232 of 100000 bytes"):
        deliver_file(fake_session(server, verify="size"), ours, "x.csv.pgp")

    assert server.files == {}
    assert not [c for c in server.calls if c[0] == "open:rb"]


def test_a_size_checked_delivery_to_a_write_only_server_lands(ours):
    server = FakeSftp(deny_read=True)

    receipt = deliver_file(fake_session(server, verify="size"), ours, "x.csv.pgp")

    assert receipt.status == "delivered"
    assert server.files == {FINAL: ours.read_bytes()}
    assert not [c for c in server.calls if c[0] == "open:rb"]


def test_a_receipt_checked_delivery_does_not_even_stat_the_size(ours):
    server = FakeSftp(deny_read=True, size_skew=7)  # a size the server misreports is not looked at

    assert deliver_file(fake_session(server, verify="receipt"), ours, "x.csv.pgp").status == "delivered"

    assert server.files == {FINAL: ours.read_bytes()}


def test_a_refused_read_back_names_the_verify_mode_to_set_and_leaves_nothing(ours):
    server = FakeSftp(deny_read=True)

    with pytest.raises(DeliveryRefused) as caught:
        deliver_file(fake_session(server), ours, "x.csv.pgp")

    assert "sftp.example:22" in str(caught.value)
    assert "set verify: size (or receipt) for partner-x" in str(caught.value)
    assert server.files == {}


def test_without_read_access_an_existing_file_of_our_size_is_reconciled_by_size(ours):
    server = FakeSftp(files={FINAL: ours.read_bytes()}, deny_read=True)

    assert deliver_file(fake_session(server, verify="size"), ours, "x.csv.pgp").status == "reconciled"

    other = FakeSftp(files={FINAL: b"short"}, deny_read=True)
    with pytest.raises(DeliveryConflict):
        deliver_file(fake_session(other, verify="size"), ours, "x.csv.pgp")


@pytest.mark.parametrize("verify", ["size", "receipt"])
def test_a_direct_upload_writes_the_final_name_and_no_temporary_file(ours, verify):
    server = FakeSftp(fail_rename=True, deny_read=True)

    receipt = deliver_file(fake_session(server, upload="direct", verify=verify), ours, "x.csv.pgp")

    assert (receipt.remote_path, receipt.status) == (FINAL, "delivered")
    assert server.files == {FINAL: ours.read_bytes()}
    assert not [c for c in server.calls if c[0] in ("rename", "open:rb") or c[1] == TEMP]


def test_a_direct_upload_that_does_not_verify_is_removed_from_the_final_name(ours):
    server = FakeSftp(drop_write=0)

    with pytest.raises(DeliveryUnavailable, match="the server reports"):
        deliver_file(fake_session(server, upload="direct", verify="size"), ours, "x.csv.pgp")

    assert server.files == {}  # the partly written final file was ours: removed
    assert ("remove", FINAL) in server.calls


def test_a_direct_upload_never_writes_over_a_file_that_appeared(ours):
    server = FakeSftp()
    real_open = server.open

    def appear_then_open(filename, mode="r", bufsize=-1):
        server.files.setdefault(FINAL, b"the recipient's own file")
        return real_open(filename, mode, bufsize)

    server.open = appear_then_open  # type: ignore[method-assign]

    with pytest.raises(DeliveryConflict, match="a file appeared under this name before the upload"):
        deliver_file(fake_session(server, upload="direct", verify="size"), ours, "x.csv.pgp")

    assert server.files == {FINAL: b"the recipient's own file"}


def test_a_refused_rename_names_upload_direct(ours):
    server = FakeSftp()

    def refuse(oldpath, newpath):
        raise PermissionError(13, "Permission denied", newpath)

    server.rename = refuse  # type: ignore[method-assign]

    with pytest.raises(DeliveryRefused) as caught:
        deliver_file(fake_session(server, upload="rename"), ours, "x.csv.pgp")

    assert "set upload: direct (with verify: size or receipt) for partner-x" in str(caught.value)
    assert server.files == {}


def test_a_temporary_file_taken_away_on_close_names_upload_direct(ours):
    server = FakeSftp()
    real_open = server.open

    def taken_on_close(filename, mode="r", bufsize=-1):
        handle = real_open(filename, mode, bufsize)
        if "w" in mode:
            handle.close = lambda: server.files.pop(posixpath.normpath(filename), None)  # type: ignore[method-assign]
        return handle

    server.open = taken_on_close  # type: ignore[method-assign]

    with pytest.raises(DeliveryRefused, match="takes files away on close .*set upload: direct"):
        deliver_file(fake_session(server), ours, "x.csv.pgp")
