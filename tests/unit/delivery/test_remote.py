"""Remote purge's calls over an in-memory SFTP server: list, remove and prove gone, discard debris."""

from __future__ import annotations

import pytest

from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.delivery import discard_partial, list_remote, remove_remote
from transfers.errors import ConfigError, DeliveryRefused


def test_list_remote_names_only_regular_files_including_our_temporary_ones():
    server = FakeSftp(files={"in/b": b"12", "in/.a.partial": b"1", "in/sub/c": b""})

    listed = list_remote(fake_session(server), "in")

    assert [(f.name, f.size) for f in listed] == [(".a.partial", 1), ("b", 2)]


def test_list_remote_of_a_missing_directory_is_empty():
    assert list_remote(fake_session(), "nowhere") == []


def test_remove_remote_deletes_once_and_then_reports_it_absent():
    server = FakeSftp(files={"in/x": b"data"})
    session = fake_session(server)

    assert (remove_remote(session, "in/x"), remove_remote(session, "in/x")) == (True, False)
    assert server.files == {}


def test_remove_remote_refuses_a_directory_and_a_path_outside_the_home():
    session = fake_session(FakeSftp(dirs={".", "in"}))

    with pytest.raises(DeliveryRefused, match="not a regular file"):
        remove_remote(session, "in")
    with pytest.raises(ConfigError):
        remove_remote(session, "../x")


def test_discard_partial_removes_only_the_temporary_upload_beside_a_delivered_file():
    server = FakeSftp(files={"in/x.pgp": b"delivered", "in/.x.pgp.partial": b"half"})

    assert discard_partial(fake_session(server), "in/x.pgp") is True
    assert server.files == {"in/x.pgp": b"delivered"}
