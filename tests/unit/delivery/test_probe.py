"""``probe_remote_dir`` over the in-memory server: the preflight probe does what the recipient's modes need.

Against real sshd servers refusing reads and renames: ``tests/integration/test_delivery_modes.py``.
"""

from __future__ import annotations

import pytest

from tests.support.sftp_fake import FakeSftp, fake_session
from transfers.delivery.probe import probe_remote_dir
from transfers.errors import DeliveryRefused


def test_the_default_modes_write_read_rename_and_remove_a_hidden_probe():
    server = FakeSftp(dirs={".", "inbound"})

    detail = probe_remote_dir(fake_session(server))

    assert "written, read back, renamed and removed" in detail
    assert server.files == {}
    methods = [method for method, _ in server.calls]
    assert methods.index("open:wx") < methods.index("open:rb") < methods.index("rename") < methods.index("remove")
    assert all(path.split("/")[-1].startswith(".") for method, path in server.calls if method != "stat")


def test_a_server_that_refuses_reads_names_the_verify_mode_and_leaves_nothing():
    server = FakeSftp(dirs={".", "inbound"}, deny_read=True)

    with pytest.raises(DeliveryRefused, match="cannot be read back .*set verify: size \\(or receipt\\) for partner-x"):
        probe_remote_dir(fake_session(server))

    assert server.files == {}
    assert probe_remote_dir(fake_session(server, verify="size")).endswith("written, renamed and removed")


def test_a_direct_inbox_gets_no_probe_file():
    server = FakeSftp(dirs={".", "inbound"})

    detail = probe_remote_dir(fake_session(server, upload="direct", verify="size"))

    assert "no probe file was written" in detail
    assert not [c for c in server.calls if c[0] != "stat"]


def test_a_server_that_refuses_renames_names_upload_direct():
    server = FakeSftp(dirs={".", "inbound"})

    def refuse(oldpath, newpath):
        raise PermissionError(13, "Permission denied", newpath)

    server.rename = refuse  # type: ignore[method-assign]

    with pytest.raises(DeliveryRefused, match="cannot be renamed .*set upload: direct"):
        probe_remote_dir(fake_session(server))

    assert server.files == {}
