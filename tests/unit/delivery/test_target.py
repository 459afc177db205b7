"""``SftpTarget.from_connection``: the delivery step builds its own target from a resolved connection."""

from __future__ import annotations

import pytest

from transfers.agreement.flow import Recipient
from transfers.connections import ConnInfo
from transfers.delivery import SftpTarget
from transfers.errors import ConfigError


def test_a_connection_without_a_pinned_host_key_is_refused_naming_the_connection():
    conn = ConnInfo("syp_sftp", "sftp", host="sftp.example", port=22, login="u", password="s3cret-pw")
    recipient = Recipient(partner="p", sftp="syp_sftp", path="in", pgp_fingerprint="A" * 40)

    with pytest.raises(ConfigError) as caught:
        SftpTarget.from_connection(conn, recipient)

    assert "connection 'syp_sftp'" in str(caught.value)
    assert "extra.host_key" in str(caught.value)
    assert "s3cret-pw" not in str(caught.value)
