"""A partner's server that stalls never hangs a night: every network wait is bounded.

The server is the real ``sshd``; in front of it sits a TCP proxy on 127.0.0.1
(tests/stall_proxy.py) that forwards the conversation and then stops
forwarding, keeping the connection open, as a hung server does. The timeout
is small here (2 s); each test only asserts the call ends, with a retriable
error, well within a generous bound, never a tight timing.
"""

from __future__ import annotations

import os
import uuid

import paramiko
import pytest

from tests.stall_proxy import StallingProxy, finishes_within
from transfers.delivery import deliver_file, open_sftp
from transfers.errors import DeliveryUnavailable, RetriableError

pytestmark = pytest.mark.integration

TIMEOUT = 2.0
BOUND = 30.0  # generous: the point is that it ends, not how fast


@pytest.fixture
def remote_dir() -> str:
    return f"t-{uuid.uuid4().hex[:8]}/inbound"


def _connect(target) -> None:
    with open_sftp(target):
        pass


def _assert_stall(outcome: object, port: int, what: str) -> None:
    assert isinstance(outcome, DeliveryUnavailable), repr(outcome)
    assert isinstance(outcome, RetriableError)
    message = str(outcome)
    assert f"127.0.0.1:{port}" in message, message
    assert what in message, message
    assert f"{TIMEOUT:g}s" in message, message


def test_a_server_that_accepts_but_never_sends_its_banner_times_out(sshd):
    with StallingProxy(upstream=None) as proxy:
        target = sshd.target(port=proxy.port, timeout=TIMEOUT)

        outcome = finishes_within(BOUND, lambda: _connect(target))

    _assert_stall(outcome, proxy.port, "SSH banner")


def test_a_server_that_stalls_once_the_channel_is_open_times_out_starting_sftp(sshd, monkeypatch):
    """The server logs us in and opens the channel, then never answers the SFTP subsystem request."""
    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:
        original = paramiko.Channel.invoke_subsystem

        def stall_first(channel, subsystem):  # times the stall, changes nothing else
            proxy.stall()
            return original(channel, subsystem)

        monkeypatch.setattr(paramiko.Channel, "invoke_subsystem", stall_first)
        target = sshd.target(port=proxy.port, timeout=TIMEOUT)

        outcome = finishes_within(BOUND, lambda: _connect(target))

    _assert_stall(outcome, proxy.port, "SFTP subsystem")


def test_a_server_that_stalls_during_login_is_unavailable_not_a_refused_login(sshd, monkeypatch):
    """paramiko reports a login that never gets an answer as an AuthenticationException: not terminal."""
    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:
        original = paramiko.Transport.auth_publickey

        def stall_first(transport, *args, **kwargs):
            proxy.stall()
            return original(transport, *args, **kwargs)

        monkeypatch.setattr(paramiko.Transport, "auth_publickey", stall_first)
        target = sshd.target(port=proxy.port, timeout=TIMEOUT)

        outcome = finishes_within(BOUND, lambda: _connect(target))

    _assert_stall(outcome, proxy.port, "logging in")


def test_a_server_that_stalls_mid_upload_times_out_and_the_retry_leaves_no_debris(sshd, remote_dir, tmp_path):
    payload = os.urandom(8 * 1024 * 1024)  # more than SSH's window and the socket buffers hold
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(payload)
    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:
        target = sshd.target(remote_dir, port=proxy.port, timeout=TIMEOUT)

        def upload() -> None:
            with open_sftp(target) as session:
                proxy.stall_after(1024 * 1024)  # a megabyte of the upload gets through, then nothing
                deliver_file(session, path, "x.csv.pgp")

        outcome = finishes_within(BOUND, upload)
        _assert_stall(outcome, proxy.port, "uploading")
        # The cut upload left its temporary file; the recipient sees no final name.
        assert sorted(p.name for p in (sshd.root / remote_dir).iterdir()) == [".x.csv.pgp.partial"]

        # The retry, with the server back, removes the debris and delivers whole.
        with open_sftp(sshd.target(remote_dir, timeout=TIMEOUT)) as session:
            receipt = deliver_file(session, path, "x.csv.pgp")

    assert receipt.status == "delivered"
    assert sorted(p.name for p in (sshd.root / remote_dir).iterdir()) == ["x.csv.pgp"]
    assert (sshd.root / remote_dir / "x.csv.pgp").read_bytes() == payload


def test_a_server_that_stalls_between_requests_times_out_naming_the_request(sshd, remote_dir, tmp_path):
    path = tmp_path / "x.csv.pgp"
    path.write_bytes(b"ciphertext")
    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:
        target = sshd.target(remote_dir, port=proxy.port, timeout=TIMEOUT)

        def upload() -> None:
            with open_sftp(target) as session:
                proxy.stall()
                deliver_file(session, path, "x.csv.pgp")

        outcome = finishes_within(BOUND, upload)

    _assert_stall(outcome, proxy.port, "preparing")


def test_the_timeout_comes_from_the_setting_unless_the_recipient_sets_its_own(sshd, tmp_path):
    from transfers.agreement.flow import Recipient
    from transfers.connections import ConnInfo
    from transfers.delivery import SftpTarget
    from transfers.settings import Settings

    conn = ConnInfo("p_sftp", "sftp", host=sshd.host, port=sshd.port, login=sshd.username,
                    extra={"host_key": sshd.host_key_line, "private_key": sshd.client_private_key})
    plain = Recipient(partner="p", sftp="p_sftp", path="in", pgp_fingerprint="A" * 40)
    slow = Recipient(partner="p", sftp="p_sftp", path="in", pgp_fingerprint="A" * 40, sftp_timeout=300)
    settings = Settings(home=tmp_path, sftp_timeout=7)

    assert Settings(home=tmp_path).sftp_timeout == 60
    assert SftpTarget.from_connection(conn, plain, settings=settings).timeout == 7
    assert SftpTarget.from_connection(conn, slow, settings=settings).timeout == 300


@pytest.fixture
def stall_syp(world, sshd, monkeypatch):
    """Call it to put the police's server behind a proxy that stalls once SFTP is asked for."""
    import dataclasses

    with StallingProxy(upstream=(sshd.host, sshd.port)) as proxy:

        def stall() -> StallingProxy:
            original = paramiko.Channel.invoke_subsystem

            def stall_first(channel, subsystem):
                proxy.stall()
                return original(channel, subsystem)

            monkeypatch.setattr(paramiko.Channel, "invoke_subsystem", stall_first)
            world.connections["syp_sftp"] = dataclasses.replace(world.connections["syp_sftp"], port=proxy.port)
            return proxy

        yield stall


def test_a_withdrawal_notice_to_a_stalled_server_times_out_as_retriable(world, stall_syp):
    from tests.integration.conftest import LOGICAL_DATE
    from transfers.cli.privacy import subject_lookups
    from transfers.devkit import synthetic
    from transfers.notices import send_notices
    from transfers.pipeline import run_flow

    run_flow(world.run("mash-referrals.A"), world.resolvers())
    proxy = stall_syp()
    subject = synthetic.referrals(40, LOGICAL_DATE)["nhs_number"].iloc[0]
    resolvers = world.resolvers()
    lookups = subject_lookups(world.config, subject, resolvers.secret)
    settings = world.settings.model_copy(update={"sftp_timeout": TIMEOUT})

    outcome = finishes_within(BOUND, lambda: send_notices(
        settings, world.config, settings.open_ledger(), resolvers.connection, kind="withdrawal",
        lookups=lookups, occasion="withdrawn", secret=resolvers.secret))

    _assert_stall(outcome, proxy.port, "SFTP subsystem")
    assert list(settings.open_ledger().entries(kind="notice")) == []  # not recorded as sent: retried later


def test_a_remote_purge_on_a_stalled_server_is_recorded_as_failed_not_hung(world, stall_syp):
    from datetime import UTC, datetime, timedelta

    from transfers.pipeline import run_flow
    from transfers.retention import execute_purge, plan_purge

    run_flow(world.run("mash-referrals.A"), world.resolvers())
    proxy = stall_syp()
    settings = world.settings.model_copy(update={"sftp_timeout": TIMEOUT})
    ledger = settings.open_ledger()
    later = datetime.now(UTC) + timedelta(days=3650)
    items = [i for i in plan_purge(settings, world.config, ledger, now=later) if i.place == "remote"]
    assert items

    report = finishes_within(BOUND, lambda: execute_purge(items, settings, world.config, ledger,
                                                          world.resolvers().connection, now=later))

    assert not isinstance(report, BaseException), repr(report)
    assert len(report.failed) == len(items)
    expected = f"127.0.0.1:{proxy.port}: no answer within {TIMEOUT:g}s while starting the SFTP subsystem"
    assert all(expected in failure for failure in report.failed), report.failed
    assert all(p.exists() for p in world.delivered("inbound/mash"))  # still there, still due
