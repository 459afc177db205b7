"""``transfers hostkey show``: the address it is given (the scan itself runs against a real sshd in integration)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from transfers.cli import app
from transfers.cli.hostkey import split_address


@pytest.mark.parametrize(
    ("address", "expected"),
    [("sftp.example", ("sftp.example", 22)), ("sftp.example:2222", ("sftp.example", 2222)),
     ("[::1]:2222", ("::1", 2222)), ("[::1]", ("::1", 22)), ("::1", ("::1", 22))],
)
def test_an_address_is_a_host_and_a_port_22_unless_given(address, expected):
    assert split_address(address) == expected


@pytest.mark.parametrize("bad", ["", "host:", "host:0", "host:65536", "host:x", "a b", "[::1]x", "/etc:22"])
def test_an_address_that_is_not_one_exits_2_before_connecting(bad):
    with pytest.raises(ValueError):
        split_address(bad)
    result = CliRunner().invoke(app, ["hostkey", "show", bad])
    assert result.exit_code == 2, result.output
