"""``transfers validate`` with ``TRANSFERS_PARTY``: each party checks its own side only, and says which side.

Against real parts: the ``world`` (sshd, gpg-made keys, PostgreSQL) and, for the store, a throwaway
PostgreSQL database. The sample agreement: flow A from children's services to the police, flow B from
the trust to children's services.
"""

from __future__ import annotations

import pytest

from tests.integration.conftest import sftp_conn, throwaway_pg_database
from tests.support.tables import table_rows

pytestmark = pytest.mark.integration

DECRYPTION_ENV = "AIRFLOW_VAR_TRANSFERS_DECRYPTION_KEY"


@pytest.fixture(autouse=True)
def wide_table(monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")


@pytest.fixture
def as_party(monkeypatch, world):
    """Set this deployment's party (and a decryption key secret: its value is never read by validate)."""

    def choose(party: str) -> None:
        monkeypatch.setenv("TRANSFERS_PARTY", party)
        monkeypatch.setenv(DECRYPTION_ENV, "placeholder: validate only checks it is set")
        monkeypatch.setenv("TRANSFERS_INBOX_DIR", str(world.root / "sftp-root"))

    return choose


def rows(output: str, *words: str) -> list[str]:
    """The table's rows (each read whole, however many lines it takes) holding every one of ``words``."""
    texts = [f" {' '.join(row.values())} " for row in table_rows(output)]
    return [text for text in texts if all(f" {w} " in text for w in words)]


def test_the_police_validate_their_receiving_side_only_and_nothing_of_other_flows(cli, world, as_party):
    as_party("south-yorkshire-police")
    world.connections.clear()  # every connection is the senders': the police need none of them

    result = cli("validate")

    assert result.exit_code == 0, result.output
    (line,) = rows(result.output, "mash-referrals.A")
    assert " receive " in line and "rotherham-childrens-services" in line
    assert "mash-referrals.B" not in result.output
    assert "0 flow(s) to send, 1 to receive" in result.output


def test_a_receiving_party_without_its_decryption_key_secret_is_told_which_side_needs_it(cli, world, as_party,
                                                                                          monkeypatch):
    as_party("south-yorkshire-police")
    monkeypatch.delenv(DECRYPTION_ENV)

    result = cli("validate")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert ("flow A (receive): secret transfers_decryption_key: decryption key of south-yorkshire-police: "
            "secret 'transfers_decryption_key' is not set") in text
    assert "syp_sftp" not in text and "cs_case_db" not in text


def test_preflight_of_a_receiving_party_connects_to_its_store_and_checks_both_signing_keys(cli, world, as_party,
                                                                                           monkeypatch):
    as_party("south-yorkshire-police")
    with throwaway_pg_database("isp_store") as (url, _name):
        monkeypatch.setenv("TRANSFERS_STORE_URL", url)
        result = cli("validate", "--connect")

    assert result.exit_code == 0, result.output
    out = result.output
    assert "ok" in rows(out, "receive", "inbox")[0] and "can be made" in out
    assert "ok" in rows(out, "receive", "store")[0] and "connected" in out
    assert "ok" in rows(out, "receive", "secret", "transfers_decryption_key")[0]
    assert "ok" in rows(out, "receive", "signing", "key", "south-yorkshire-police")[0]  # its own, for receipts
    assert "ok" in rows(out, "receive", "signing", "key", "rotherham-childrens-services")[0]  # the sender's pin
    assert not rows(out, "send")  # the police send nothing
    assert "SFTP" not in out and "source" not in out and "mash-referrals.B" not in out
    assert "PRIVATE KEY" not in out


def test_an_unreachable_store_fails_naming_the_host_never_the_password(cli, world, as_party, monkeypatch):
    as_party("south-yorkshire-police")
    monkeypatch.setenv("TRANSFERS_STORE_URL", "postgresql+psycopg2://loader:s3cret-pw@127.0.0.1:1/received")

    result = cli("validate", "--connect")

    assert result.exit_code == 1, result.output
    assert "FAILED" in rows(result.output, "receive", "store")[0]
    assert "127.0.0.1:1/received" in result.output and "cannot connect" in result.output
    assert "s3cret-pw" not in result.output


def test_an_inbox_that_cannot_be_made_and_a_missing_sender_key_file_fail_on_the_receiving_side(cli, world,
                                                                                               as_party, monkeypatch):
    as_party("south-yorkshire-police")
    blocker = world.root / "not-a-dir"
    blocker.write_text("a file where the inbox should be\n")
    monkeypatch.setenv("TRANSFERS_INBOX_DIR", str(blocker))
    (world.settings.keys / "rotherham-childrens-services.asc").unlink()

    result = cli("validate")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"flow A (receive): inbox: inbox {blocker}/" in text and "is not a directory" in text
    assert "flow A (receive): signing key rotherham-childrens-services:" in text
    assert "rotherham-childrens-services.asc" in text


def test_a_remote_mailbox_is_checked_instead_of_an_inbox_pinned_host_key_login_and_listing(cli, world, as_party,
                                                                                             sshd, monkeypatch):
    as_party("south-yorkshire-police")
    monkeypatch.delenv("TRANSFERS_INBOX_DIR")
    monkeypatch.setenv("TRANSFERS_MAILBOX", "syp_mailbox")
    world.connections["syp_mailbox"] = sftp_conn("syp_mailbox", sshd)

    result = cli("validate", "--connect")

    assert result.exit_code == 0, result.output
    (line,) = rows(result.output, "receive", "mailbox", "syp_mailbox")
    assert " ok " in line and "host key is the pinned one, login ok" in " ".join(result.output.split())
    assert not rows(result.output, "receive", "inbox")
    assert "PRIVATE KEY" not in result.output

    world.connections["syp_mailbox"] = sftp_conn("syp_mailbox", sshd, host_key=sshd.other_host_key_line)
    refused = cli("validate", "--connect")
    assert refused.exit_code == 1, refused.output
    assert "FAILED" in rows(refused.output, "receive", "mailbox", "syp_mailbox")[0]
    assert "is not the pinned" in " ".join(refused.output.split())

    del world.connections["syp_mailbox"]
    monkeypatch.delenv("AIRFLOW_CONN_SYP_MAILBOX")
    undefined = cli("validate")
    assert undefined.exit_code == 2, undefined.output
    assert "flow A (receive): mailbox syp_mailbox:" in " ".join(undefined.output.split())


def test_childrens_services_see_the_flow_they_send_and_the_flow_they_receive(cli, world, as_party):
    as_party("rotherham-childrens-services")
    del world.connections["rft_exports"]  # the trust's source: not children's services' to check

    result = cli("validate")

    assert result.exit_code == 0, result.output
    assert " send " in rows(result.output, "mash-referrals.A")[0]
    assert " receive " in rows(result.output, "mash-referrals.B")[0]
    assert "1 flow(s) to send, 1 to receive" in result.output


def test_a_flow_the_party_neither_sends_nor_receives_is_not_its_to_preflight(cli, world, as_party):
    as_party("rotherham-nhs-ft")

    result = cli("validate", "--connect", "mash-referrals.A")

    assert result.exit_code == 2, result.output
    assert "rotherham-nhs-ft neither sends nor receives this flow" in " ".join(result.output.split())


def test_an_unknown_party_is_a_configuration_error_listing_the_signatories(cli, world, as_party):
    as_party("syp")

    result = cli("validate")

    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "TRANSFERS_PARTY: 'syp' is not a Tier 1 signatory" in text and "south-yorkshire-police" in text
