"""The receiving side's checks that need no real part: the inbox directory, a SQLite store, the secrets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from transfers.agreement import load_config, receiving_flows
from transfers.crypto import DECRYPTION_KEY_VAR
from transfers.errors import SecretMissing
from transfers.preflight import defined_receiving
from transfers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config")


def _secret(values: dict[str, str]):
    def lookup(name: str) -> str:
        if name not in values:
            raise SecretMissing(f"secret {name!r} is not set")
        return values[name]

    return lookup


def _checks(config, settings, secrets=None) -> dict[str, object]:
    (inbound,) = receiving_flows(config, "south-yorkshire-police")
    secrets = secrets if secrets is not None else {DECRYPTION_KEY_VAR: "x", "transfers_signing_key": "x"}
    found = defined_receiving(inbound, _secret(secrets), settings=settings, protocol=config.protocol)
    assert {c.side for c in found} == {"receive"} and {c.flow for c in found} == {"mash-referrals.A"}
    return {c.check: c for c in found}


def test_an_inbox_that_does_not_exist_yet_is_fine_if_it_can_be_made_and_nothing_is_made(config, tmp_path):
    settings = Settings(home=tmp_path / "home", config_dir=ROOT / "config")

    checks = _checks(config, settings)

    assert checks["inbox"].status == "ok", checks["inbox"]
    assert "can be made" in checks["inbox"].detail
    assert not (tmp_path / "home").exists()  # validate made nothing: not the inbox, not the SQLite store
    assert checks["store"].status == "ok" and "the first delivery makes it" in checks["store"].detail


def test_an_existing_inbox_is_reported_as_such(config, tmp_path):
    settings = Settings(home=tmp_path, config_dir=ROOT / "config", inbox_dir=tmp_path / "sftp")
    (tmp_path / "sftp" / "inbound" / "mash").mkdir(parents=True)

    assert "exists and is readable and writable" in _checks(config, settings)["inbox"].detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_inbox_under_a_read_only_directory_fails_naming_it(config, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    settings = Settings(home=tmp_path, config_dir=ROOT / "config", inbox_dir=locked)

    check = _checks(config, settings)["inbox"]

    assert check.failed and f"{locked} is not readable and writable" in check.detail


def test_a_store_url_that_is_not_sqlalchemy_fails_without_showing_it(config, tmp_path):
    settings = Settings(home=tmp_path, config_dir=ROOT / "config", store_url="nosuchdb://user:pw-123@host/db")

    check = _checks(config, settings)["store"]

    assert check.failed and "TRANSFERS_STORE_URL: not a usable SQLAlchemy URL" in check.detail
    assert "pw-123" not in check.detail


def test_each_missing_secret_is_named_with_what_it_is_for(config, tmp_path):
    settings = Settings(home=tmp_path, config_dir=ROOT / "config")

    checks = _checks(config, settings, secrets={})

    assert checks[f"secret {DECRYPTION_KEY_VAR}"].failed
    assert "decryption key of south-yorkshire-police" in checks[f"secret {DECRYPTION_KEY_VAR}"].detail
    assert checks["secret transfers_signing_key"].failed
    assert "for receipts" in checks["secret transfers_signing_key"].detail


def _conns(found: dict):
    from transfers.connections import ConnInfo

    def lookup(conn_id: str) -> ConnInfo:
        if conn_id not in found:
            raise SecretMissing(f"connection {conn_id!r} is not defined")
        return found[conn_id]

    return lookup


def test_with_a_mailbox_its_connection_is_checked_instead_of_a_local_inbox(config, tmp_path):
    from tests.support.sftp_fake import fake_session
    from transfers.connections import ConnInfo

    (inbound,) = receiving_flows(config, "south-yorkshire-police")
    secrets = _secret({DECRYPTION_KEY_VAR: "x", "transfers_signing_key": "x"})
    settings = Settings(home=tmp_path / "home", config_dir=ROOT / "config", mailbox="syp_mailbox",
                        inbox_dir=tmp_path / "not-used")
    pinned = ConnInfo("syp_mailbox", "sftp", host="mailbox.example", login="syp",
                      extra={"host_key": fake_session().target.host_key})

    def checks(conns: dict) -> dict:
        found = defined_receiving(inbound, secrets, settings=settings, protocol=config.protocol,
                                  connection=_conns(conns))
        return {c.check: c for c in found}

    ok = checks({"syp_mailbox": pinned})
    assert "inbox" not in ok
    assert ok["mailbox syp_mailbox"].status == "ok", ok["mailbox syp_mailbox"]
    assert "syp@mailbox.example:22, host key pinned, directory 'inbound/mash'" in ok["mailbox syp_mailbox"].detail
    assert "is not defined" in checks({})["mailbox syp_mailbox"].detail
    unpinned = checks({"syp_mailbox": ConnInfo("syp_mailbox", "sftp", host="mailbox.example", login="syp")})
    assert unpinned["mailbox syp_mailbox"].failed and "extra.host_key is missing" in unpinned["mailbox syp_mailbox"].detail
