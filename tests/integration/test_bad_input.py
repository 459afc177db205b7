"""Bad input and a bad environment get clear errors: rejected database logins, a full disk, a refused key.

Real parts throughout: the local PostgreSQL refuses the logins, a 64 KiB tmpfs is the full
disk (mounted by the ``mounts`` fixture, which needs root), and the refused keys are made by ``gpg``.
"""

from __future__ import annotations

import json
import os
import uuid

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from tests.integration.conftest import LOGICAL_DATE, PG_ADMIN_URL, pin_and_sign
from transfers.agreement import Source
from transfers.connections import ConnInfo
from transfers.crypto import encrypt_to_file, load_recipient_key
from transfers.errors import SourceError, SourceUnavailable, WorkspaceFull
from transfers.sources import extract
from transfers.staging import Staging, new_staging_key

pytestmark = pytest.mark.integration


# --------------------------------------------------------------------------- database logins


@pytest.fixture
def refusing_pg(pg_source):
    """Ways the real PostgreSQL refuses a login even with trust authentication on 127.0.0.1.

    pg_hba.conf trusts 127.0.0.1, so a wrong password is accepted here; a role that does not
    exist, a database that does not exist, a role that may not log in (it has a password) and a
    database whose CONNECT right was revoked are refused by the server itself.
    """
    _url, database = pg_source
    suffix = uuid.uuid4().hex[:8]
    no_login, locked_db, locked_role = f"isp_nologin_{suffix}", f"isp_locked_{suffix}", f"isp_locked_{suffix}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE ROLE {no_login} NOLOGIN PASSWORD 'right-password'"))
        conn.execute(text(f"CREATE ROLE {locked_role} LOGIN"))
        conn.execute(text(f'CREATE DATABASE "{locked_db}"'))
        conn.execute(text(f'REVOKE CONNECT ON DATABASE "{locked_db}" FROM PUBLIC'))
    cases = {
        "role does not exist": ("postgres_typo", database, None),
        "database does not exist": ("postgres", f"{database}_typo", None),
        "role may not log in": (no_login, database, "wrong-password"),
        "no CONNECT on the database": (locked_role, locked_db, None),
    }
    yield cases
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{locked_db}" WITH (FORCE)'))
        conn.execute(text(f"DROP ROLE IF EXISTS {no_login}"))
        conn.execute(text(f"DROP ROLE IF EXISTS {locked_role}"))
    admin.dispose()


def _extract(tmp_path, conn: ConnInfo) -> None:
    (tmp_path / "q.sql").write_text("SELECT 1 AS x")
    source = Source(kind="sql", connection=conn.conn_id, query="q.sql")
    list(extract(source, conn, config_dir=tmp_path, logical_date=LOGICAL_DATE))


@pytest.mark.parametrize("case", ["role does not exist", "database does not exist", "role may not log in",
                                  "no CONNECT on the database"])
def test_a_refused_database_login_is_terminal_and_names_the_connection(refusing_pg, tmp_path, case):
    login, database, password = refusing_pg[case]
    conn = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=5432, login=login, password=password,
                    schema=database)

    with pytest.raises(SourceError) as caught:  # terminal: a retry would be refused the same way
        _extract(tmp_path, conn)

    message = str(caught.value)
    assert not caught.value.retriable
    assert "cs_case_db" in message and "127.0.0.1:5432" in message and "refused the connection" in message
    assert "wrong-password" not in message and "right-password" not in message


def test_a_database_that_is_down_is_still_retriable(tmp_path):
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = ConnInfo("cs_case_db", "postgres", host="127.0.0.1", port=port, login="postgres", schema="x")

    with pytest.raises(SourceUnavailable) as caught:
        _extract(tmp_path, conn)
    assert caught.value.retriable and f"127.0.0.1:{port}" in str(caught.value)


def test_the_cli_does_not_retry_a_refused_login(cli, world, refusing_pg):
    from dataclasses import replace

    login, database, _password = refusing_pg["role does not exist"]
    world.connections["cs_case_db"] = replace(world.connections["cs_case_db"], login=login)

    result = cli("run", "mash-referrals.A", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 1, result.output  # 1: trying again will not help (75 would retry)
    assert "refused the connection" in result.output and "temporary failure" not in result.output


# --------------------------------------------------------------------------- a full disk


def test_staging_on_a_full_disk_is_retriable_names_the_place_and_leaves_no_part(mounts, tmp_path):
    disk = mounts.tmpfs(tmp_path / "tiny")
    staging = Staging(disk / "run", new_staging_key())
    batch = pd.DataFrame({"referral_id": [f"R{i:06d}" for i in range(4000)], "note": ["x" * 40] * 4000})

    with pytest.raises(WorkspaceFull) as caught:
        staging.write_batches("extract", [batch])

    assert caught.value.retriable
    assert f"{disk / 'run' / 'extract'}: no space left on the device" in str(caught.value)
    assert not [p for p in (disk / "run").rglob("*") if p.is_file()]  # no cut-short part taken for a whole one


def test_encrypting_onto_a_full_disk_is_retriable_and_leaves_nothing(mounts, tmp_path, gpg_partner):
    disk = mounts.tmpfs(tmp_path / "tiny")
    key = load_recipient_key(gpg_partner.public_key_path, gpg_partner.fingerprint)

    with pytest.raises(WorkspaceFull) as caught:
        encrypt_to_file(os.urandom(200_000), key, disk / "x.csv.pgp", filename="x.csv")

    assert f"{disk}: no space left" in str(caught.value) and "x.csv.pgp" in str(caught.value)
    assert list(disk.iterdir()) == []


def test_a_run_on_a_full_disk_exits_75_with_a_clear_message_not_a_traceback(cli, world, mounts, monkeypatch):
    home = mounts.tmpfs(world.settings.home, "1m")
    monkeypatch.setenv("TRANSFERS_LEDGER_URL", f"sqlite:///{world.root / 'ledger.db'}")
    with (home / "filler").open("wb", buffering=0) as fh:  # fill the disk to the last byte
        try:
            while fh.write(b"\0" * 4096):
                pass
        except OSError:
            pass

    result = cli("run", "mash-referrals.B", "--date", LOGICAL_DATE.isoformat())  # raises on any traceback

    assert result.exit_code == 75, result.output
    assert "temporary failure" in result.output and "no space left on the device" in result.output
    assert str(home) in result.output
    assert world.delivered("inbound/ed-attendances") == []


# --------------------------------------------------------------------------- a refused recipient key


def test_a_refused_recipient_key_is_recorded_in_the_ledger_and_the_run_log(cli, world, gpg_home):
    other = gpg_home.generate_key("Someone Else <else@example.invalid>", algo="cv25519")
    key_file = world.settings.keys / "rotherham-childrens-services.asc"
    gpg_home.export_public(other, key_file)  # not the pinned key
    material = [line for line in key_file.read_text().splitlines() if len(line) > 40]
    # The partner's file now holds only that key: pin it as the partner's signing key and sign off with it,
    # so the agreement is still signed by every partner and the encryption key is what is wrong.
    pin_and_sign(world, "rotherham-childrens-services", other, gpg_home.export_secret(other))

    result = cli("run", "mash-referrals.B", "--date", LOGICAL_DATE.isoformat())

    assert result.exit_code == 1, result.output
    entries = list(world.settings.open_ledger().entries(kind="key-refused"))
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.flow, entry.recipient, entry.logical_date) == ("mash-referrals.B", "rotherham-childrens-services",
                                                                 LOGICAL_DATE)
    pinned = world.config.flow("mash-referrals.B").flow.to[0].pgp_fingerprint
    assert entry.payload["partner"] == "rotherham-childrens-services"
    assert entry.payload["fingerprint"] == pinned
    assert f"is not the pinned {pinned}" in entry.payload["reason"]
    log = world.run("mash-referrals.B").log_path.read_text()
    assert "recipient key refused" in log and pinned in log
    recorded = json.dumps(entry.payload) + log
    assert not [line for line in material if line in recorded]  # fingerprints and reason, never key material
    assert world.delivered("inbound/ed-attendances") == []
