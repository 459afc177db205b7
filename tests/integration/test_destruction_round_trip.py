"""Both ends of destruction: the police destroy on the controller's date, certify it, and the controller records it.

Nothing is played by hand here: the police's purge (``transfers purge --as-of``) destroys the rows, their
daily exchange (the retention DAG's second task) issues the signed certificate into their inbox's
``receipts/`` folder, and Children's Services (flow A's sender and the agreement's controller) collect it
over their pinned SFTP connection. Real sshd, PostgreSQL and gpg; the controller's period is P30D so the
police's one-year signing key still verifies at the controlled "now".
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.integration.exchange_world import RECIPIENT, SENDER, Exchange, exchange, police_keys, police_sshd
from tests.integration.test_destruction_certificates import DESTROY_BY, DUE, _collect, received
from tests.integration.test_recipient_retention import ID, as_police, rows
from transfers.exchange_daily import run_daily_exchange
from transfers.ledger.records import CertificateIssued, Destroyed, DestructionCertified

__all__ = ["exchange", "police_keys", "police_sshd", "received"]  # fixtures, imported for pytest

pytestmark = pytest.mark.integration


def _police_daily(ex: Exchange):
    with ex.police.settings.open_ledger() as ledger:
        return run_daily_exchange(ex.police.settings, ex.police.config, ledger, ex.police.resolvers(),
                                  now=DUE + timedelta(hours=5))


def _police(ex: Exchange, cls):
    with ex.police.settings.open_ledger() as ledger:
        return list(ledger.records(cls))


def test_destroyed_at_the_recipient_certified_and_recorded_by_the_controller(received: Exchange, monkeypatch):
    loaded = len(rows(received))
    # Before the date: the police destroy nothing and so certify nothing.
    assert as_police(received, monkeypatch, "purge", "--as-of", (DESTROY_BY - timedelta(days=1)).isoformat()).exit_code == 0
    assert _police_daily(received).certificates_issued == 0 and len(rows(received)) == loaded

    done = as_police(received, monkeypatch, "purge", "--as-of", DESTROY_BY.isoformat())
    assert done.exit_code == 0, done.output
    assert rows(received) == [] and [d.delivery_id for d in _police(received, Destroyed)] == [ID]
    daily = _police_daily(received)
    assert (daily.certificates_issued, daily.problems) == (1, [])
    [issued] = _police(received, CertificateIssued)
    assert (issued.delivery_id, issued.controller, issued.sent_to, issued.rows) == (ID, SENDER, "inbox", loaded)
    assert _police_daily(received).certificates_issued == 0  # issued once

    # The controller collects it over SFTP, verifies it against the police's pinned key, and records it.
    [result] = _collect(received, DUE + timedelta(days=1))
    assert result.status == "certified", result.detail
    [certified] = received.sender_records(DestructionCertified)
    assert (certified.delivery_id, certified.recipient, certified.rows) == (ID, RECIPIENT, loaded)
    assert certified.certificate_sha256 == issued.certificate_sha256
    assert certified.signer_fingerprint == received.keys.signing_fingerprint
