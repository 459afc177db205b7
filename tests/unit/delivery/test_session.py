"""``SftpOps``, the seam under the upload rules: paramiko's client and the test fake both offer all of it."""

from __future__ import annotations

import inspect

import paramiko
import pytest

from tests.support.sftp_fake import FakeSftp
from transfers.delivery import SftpFile, SftpOps

OPS = [n for n, v in vars(SftpOps).items() if inspect.isfunction(v) and not n.startswith("_")]
FILE_OPS = [n for n, v in vars(SftpFile).items() if inspect.isfunction(v) and n not in ("__init__", "__subclasshook__")]


@pytest.mark.parametrize("impl", [paramiko.SFTPClient, FakeSftp])
def test_every_call_the_rules_make_exists_on_the_real_client_and_the_fake(impl):
    assert OPS and [n for n in OPS if not callable(getattr(impl, n, None))] == []


def test_every_file_call_exists_on_paramikos_file():
    assert FILE_OPS and [n for n in FILE_OPS if not callable(getattr(paramiko.SFTPFile, n, None))] == []
