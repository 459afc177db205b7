"""Preflight: prove, before the first night, that every connection, secret, server and key a flow names works.

Two depths, one list of ``Check`` rows (ok / FAILED with the reason naming the
connection, host or key file, or skipped):

- ``defined`` resolves every connection and secret id the flow names, without
  connecting (plain ``transfers validate``): a typo in an id is found before the
  nightly run instead of at 2am.
- ``preflight`` (``transfers validate --connect``) also connects: the extract
  query wrapped with ``LIMIT 0`` (or the CSV header), the consent register and
  opt-out list columns, each SFTP server (pinned host key, login, a temporary
  file written, read back and renamed as the recipient's upload and verify modes
  need, and removed, in the remote directory), each recipient key, and
  the sender's signing key (the private key in the secrets backend, which must be
  the sender's pinned ``signing_fingerprint``), each of which must stay valid for
  ``KEY_MARGIN``.

Each row says which side of the exchange it is for. A deployment that names its party
(``TRANSFERS_PARTY``) checks the above for the flows it sends, and for each flow it receives
(``defined_receiving`` / ``preflight_receiving``): its inbox directory (or, with ``TRANSFERS_MAILBOX``,
the mailbox connection: defined; with --connect, pinned host key, login and the flow's directory
listable), its store, its decryption and signing key secrets (receipts are signed) and the sender's
pinned signing key; nothing of flows it neither sends nor receives.

Nothing here reads a record, and no row carries a secret or a value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from transfers.agreement import FlowRef, Inbound, Protocol, Recipient
from transfers.connections import ConnLookup, SecretLookup
from transfers.delivery.hostkeys import connection_pin_warning, connection_pins, describe_pins
from transfers.errors import ConfigError, DeliveryUnavailable, SourceError, TransferError

if TYPE_CHECKING:
    from transfers.settings import Settings

#: A recipient key must stay valid this long: time to get a new one before a night is missed.
KEY_MARGIN = timedelta(days=30)

Side = Literal["send", "receive"]


@dataclass(frozen=True)
class Check:
    """One line of the preflight table."""

    flow: str
    check: str  # what was checked: "connection cs_case_db", "SFTP syp_sftp", "key south-yorkshire-police"
    status: Literal["ok", "FAILED", "skipped"]
    detail: str  # what was found, or why it failed (names, never values or secrets)
    side: Side = "send"  # which end of the flow the check is for
    warning: str = ""  # something to act on soon that does not fail the check (a host-key pin running out)

    @property
    def failed(self) -> bool:
        return self.status == "FAILED"


def named_ids(ref: FlowRef) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The connection ids (with what each is for) and secret names a flow's runs resolve."""
    flow = ref.flow
    connections: dict[str, list[str]] = {}
    uses = [(flow.source.connection, "source")] + [
        (r.sftp_connection, f"SFTP to {r.partner}") if r.mesh is None else (r.mesh.connection, f"MESH to {r.partner}")
        for r in flow.to]
    for source, what in ((flow.consent.consent_register, "consent register"), (flow.consent.opt_outs, "opt-out list")):
        if source is not None:
            uses.append((source.connection, what))
    archive = flow.retention.archive
    if archive is not None and archive.connection:
        uses.append((archive.connection, "archive"))
    for conn_id, what in uses:
        connections.setdefault(conn_id, []).append(what)
    from transfers.crypto import SIGNING_KEY_VAR

    setting = ref.agreement.pseudonymisation
    secrets = {setting.key_secret: "pseudonymisation key"} if setting is not None else {}
    secrets[SIGNING_KEY_VAR] = f"signing key of {flow.from_}"  # every delivery is signed by its sender
    return connections, secrets


def defined(ref: FlowRef, connection: ConnLookup, secret: SecretLookup) -> list[Check]:
    """Resolve every connection and secret the flow names (and read SFTP host-key pins); connect to nothing."""
    connections, secrets = named_ids(ref)
    pinned = partial(connection_pins, connection)  # a malformed pin is found now, not at 2am
    wanted: list[tuple[str, Callable[[str], object], str, str]] = [
        (f"connection {conn_id}", pinned if any(r.sftp == conn_id for r in ref.flow.to) else connection, conn_id,
         ", ".join(uses)) for conn_id, uses in connections.items()]
    wanted += [(f"secret {name}", secret, name, use) for name, use in secrets.items()]
    checks = []
    for what, lookup, name, use in wanted:
        try:
            lookup(name)  # the value itself is never shown
        except TransferError as exc:
            checks.append(Check(ref.key, what, "FAILED", f"{use}: {exc}"))
        else:
            checks.append(Check(ref.key, what, "ok", f"defined ({use})"))
    return checks


def preflight(ref: FlowRef, connection: ConnLookup, secret: SecretLookup, *, config_root: Path, keys_dir: Path,
              logical_date: date, protocol: Protocol | None = None, today: date | None = None) -> list[Check]:
    """Every check of ``defined``, then connect to the source, the subject lists, each SFTP server, and check keys.

    Args:
        ref: The flow.
        connection: Resolves a connection id (Airflow's lookups in the installed command).
        secret: Resolves a secret name.
        config_root: The config directory (the query files live under it).
        keys_dir: Where the recipients' public keys are.
        logical_date: The date a CSV source's ``{ds}`` and a query's ``:ds`` stand for.
        protocol: The Tier 1 register, for the sender's pinned signing key and every partner's sign-off of the
            agreement (without it, neither is checked).
        today: The day SFTP host-key pins are judged on (default today in UTC); a pin ending within
            ``KEY_MARGIN`` of it is a warning.
    """
    from transfers.sources import source_columns

    checks = defined(ref, connection, secret)
    flow = ref.flow

    def source() -> str:
        columns = source_columns(flow.source, connection(flow.source.connection), config_dir=config_root,
                                 logical_date=logical_date)
        missing = [name for name in flow.fields if name not in columns]
        if missing:
            raise SourceError(f"connection {flow.source.connection!r}: the extract has no column "
                              f"{', '.join(map(repr, missing))} the flow names (it has: {', '.join(columns)})")
        return (f"{flow.source.kind} source answers: {len(columns)} columns, all {len(flow.fields)} the flow "
                f"names (read with no rows, for {logical_date})")

    checks.append(_run(ref, f"source {flow.source.connection}", source))
    if (lists := _subject_lists(ref, connection)) is not None:
        checks.append(lists)
    for recipient in flow.to:
        day = today or datetime.now(UTC).date()
        if recipient.sftp is not None:  # a MESH recipient has no SFTP server to probe
            sftp = _run(ref, f"SFTP {recipient.sftp}", partial(_sftp, recipient, connection, day))
            checks.append(replace(sftp, warning=connection_pin_warning(connection, recipient.sftp, day, KEY_MARGIN)))
        if recipient.mesh is not None:
            checks.append(_run(ref, f"MESH {recipient.mesh.connection}", partial(_mesh, recipient, connection)))
        checks.append(_run(ref, f"key {recipient.partner}", partial(_key, recipient, keys_dir)))
    if protocol is not None:
        checks.append(_run(ref, f"signing key {flow.from_}", partial(_signing_key, ref, protocol, secret)))
        checks.append(_run(ref, f"sign-off {ref.agreement.id}", partial(_signoff, ref, protocol, keys_dir)))
    return checks


def _signoff(ref: FlowRef, protocol: Protocol, keys_dir: Path) -> str:
    """Every partner has signed this version of the agreement file (what ``check_agreement`` will require)."""
    from transfers.agreement.signoff import require_signoff

    found = require_signoff(ref.path, ref.agreement, protocol, keys_dir)
    return f"version {ref.agreement.version} signed by every partner ({', '.join(s.partner for s in found)})"


def _run(ref: FlowRef, what: str, check: Callable[[], str], side: Side = "send") -> Check:
    try:
        return Check(ref.key, what, "ok", check(), side)
    except TransferError as exc:
        return Check(ref.key, what, "FAILED", str(exc), side)
    except Exception as exc:  # one broken check must not hide the others; its text may hold values
        return Check(ref.key, what, "FAILED", f"unexpected {type(exc).__name__}", side)


def _subject_lists(ref: FlowRef, connection: ConnLookup) -> Check | None:
    from transfers.consent import probe_subject_lists

    basis = ref.flow.consent
    if basis.consent_register is None and basis.opt_outs is None:
        return None
    what = "consent register / opt-out list"
    try:
        problems = probe_subject_lists(basis, connection)
    except TransferError as exc:
        problems = [str(exc)]
    if problems:
        return Check(ref.key, what, "FAILED", "; ".join(problems))
    return Check(ref.key, what, "ok", "readable, every declared column is there")


def _mesh(recipient: Recipient, connection: ConnLookup) -> str:
    from transfers.delivery.mesh import MeshAccount, handshake

    assert recipient.mesh is not None
    return handshake(MeshAccount.from_connection(connection(recipient.mesh.connection)))


def _sftp(recipient: Recipient, connection: ConnLookup, today: date) -> str:
    import paramiko

    from transfers.delivery import SftpTarget, open_sftp
    from transfers.delivery.probe import probe_remote_dir

    target = SftpTarget.from_connection(connection(recipient.sftp_connection), recipient)
    with open_sftp(target, today=today) as session:
        try:
            writable = probe_remote_dir(session)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeliveryUnavailable(f"SFTP server {target.address}: checking {target.remote_dir!r} failed "
                                      f"({type(exc).__name__}); a later attempt may succeed") from None
    shown = describe_pins(session.pin, target.host_keys)
    return f"{target.username}@{target.address}: host key is the pinned one, login ok, {writable}; {shown}"


def _signing_key(ref: FlowRef, protocol: Protocol, secret: SecretLookup) -> str:
    from transfers.crypto import SIGNING_KEY_VAR, party_signing_key

    key = party_signing_key(secret, protocol, ref.flow.from_, margin=KEY_MARGIN)  # as the run gets it
    until = f"valid until {key.expires_at:%Y-%m-%d}" if key.expires_at else "does not expire"
    return (f"secret {SIGNING_KEY_VAR}: {key.fingerprint} ({key.algorithm}), the pinned signing key, {until}, "
            f"at least {KEY_MARGIN.days} days")


def _key(recipient: Recipient, keys_dir: Path) -> str:
    from transfers.crypto import load_recipient_key

    key = load_recipient_key(keys_dir / recipient.key_file, recipient.pgp_fingerprint, margin=KEY_MARGIN)
    until = f"valid until {key.expires_at:%Y-%m-%d}" if key.expires_at else "does not expire"
    return f"{recipient.key_file}: {key.fingerprint} ({key.algorithm}) {until}, at least {KEY_MARGIN.days} days"


# ---------------------------------------------------------------------------------------- the receiving side


def receiving_secrets(inbound: Inbound) -> dict[str, str]:
    """The secret names (with what each is for) a receive run of ``inbound`` resolves."""
    from transfers.crypto import DECRYPTION_KEY_VAR, SIGNING_KEY_VAR

    me = inbound.recipient.partner
    return {DECRYPTION_KEY_VAR: f"decryption key of {me}", SIGNING_KEY_VAR: f"signing key of {me}, for receipts"}


def defined_receiving(inbound: Inbound, secret: SecretLookup, *, settings: Settings, protocol: Protocol,
                      connection: ConnLookup | None = None) -> list[Check]:
    """For a flow this party receives: its inbox directory, secrets, store URL and the sender's pinned key file.

    Connects to nothing (plain ``transfers validate``). With ``settings.mailbox``, the inbox is that
    connection (resolved with ``connection``, which must then be given), its host key pinned.
    """
    return _receiving(inbound, secret, settings, protocol, connect=False, connection=connection)


def preflight_receiving(inbound: Inbound, secret: SecretLookup, *, settings: Settings,
                        protocol: Protocol, connection: ConnLookup | None = None) -> list[Check]:
    """``defined_receiving``, and also connect to the store and check both keys stay valid for ``KEY_MARGIN``.

    With ``settings.mailbox``: connect to it (host key pinned, login) and list the flow's directory.

    This party's own signing key in the secrets backend must be its pinned ``signing_fingerprint``
    (receipts are signed with it); the sender's pinned signing key file is what every delivery's
    signatures are verified against.
    """
    return _receiving(inbound, secret, settings, protocol, connect=True, connection=connection)


def _receiving(inbound: Inbound, secret: SecretLookup, settings: Settings, protocol: Protocol, *,
               connect: bool, connection: ConnLookup | None) -> list[Check]:
    ref, me, sender = inbound.ref, inbound.recipient.partner, inbound.ref.flow.from_
    if settings.mailbox:
        inbox = partial(_mailbox, inbound, settings, connection, connect=connect)
        checks = [_run(ref, f"mailbox {settings.mailbox}", inbox, "receive")]
        if connect and connection is not None:
            warning = connection_pin_warning(connection, settings.mailbox, datetime.now(UTC).date(), KEY_MARGIN)
            checks[0] = replace(checks[0], warning=warning)
    else:
        checks = [_run(ref, "inbox", partial(_inbox, inbound, settings), "receive")]
    for name, use in receiving_secrets(inbound).items():
        try:
            secret(name)  # the value itself is never shown
        except TransferError as exc:
            checks.append(Check(ref.key, f"secret {name}", "FAILED", f"{use}: {exc}", "receive"))
        else:
            checks.append(Check(ref.key, f"secret {name}", "ok", f"defined ({use})", "receive"))
    checks.append(_run(ref, "store", partial(_store, settings, connect=connect), "receive"))
    if connect:
        checks.append(_run(ref, f"signing key {me}", partial(_own_signing_key, me, protocol, secret), "receive"))
    # Plain validate judges partner keys with the run's own margin, as it does for the sending side.
    margin = KEY_MARGIN if connect else timedelta(days=7)
    checks.append(_run(ref, f"signing key {sender}",
                       partial(_sender_key, sender, protocol, settings.keys, margin), "receive"))
    return checks


def _inbox(inbound: Inbound, settings: Settings) -> str:
    """The flow's inbox directory exists and is usable, or its nearest existing parent lets us make it."""
    directory = settings.inbox / inbound.recipient.remote_path
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"inbox {directory}: {existing} is not a directory")
    # Read the delivery, write the receipt beside it, and move a rejected one to quarantine.
    if not os.access(existing, os.R_OK | os.W_OK | os.X_OK):
        raise ConfigError(f"inbox {directory}: {existing} is not readable and writable by this user")
    if existing != directory:
        return f"{directory} does not exist yet; {existing} is writable (it can be made)"
    return f"{directory} exists and is readable and writable"


def _mailbox(inbound: Inbound, settings: Settings, connection: ConnLookup | None, *, connect: bool) -> str:
    """The mailbox connection resolves and pins a host key; with ``connect``, log in and list the flow's path."""
    from transfers.delivery import open_sftp
    from transfers.receive.mailbox import probe, target_for

    if connection is None:
        raise ConfigError(f"TRANSFERS_MAILBOX={settings.mailbox}: no connection lookup to resolve it with")
    target = target_for(settings, connection, inbound.recipient)
    if not connect:
        return f"{target.username}@{target.address}, host key pinned, directory {target.remote_dir!r} (--connect logs in)"
    with open_sftp(target) as session:
        listed = probe(session)
    shown = describe_pins(session.pin, target.host_keys)
    return f"{target.username}@{target.address}: host key is the pinned one, login ok, {listed}; {shown}"


def _store(settings: Settings, *, connect: bool) -> str:
    """The store's URL is valid and its driver loads; with ``connect``, it accepts a connection."""
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        url = sqlalchemy.make_url(settings.store_database)
        engine = sqlalchemy.create_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        raise ConfigError(f"TRANSFERS_STORE_URL: not a usable SQLAlchemy URL ({type(exc).__name__})") from None
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not Path(url.database).exists():
        # A SQLite store is made on the first load: connecting now would leave an empty file behind.
        parent = Path(url.database).parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(f"store {shown}: {parent} is not writable, so the database cannot be made")
        return f"{shown}: does not exist yet; {parent} is writable (the first delivery makes it)"
    if not connect:
        return f"{shown}: a valid URL, its driver loads (--connect connects)"
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = type(getattr(exc, "orig", None) or exc).__name__
        raise DeliveryUnavailable(f"store {shown}: cannot connect ({reason})") from None
    finally:
        engine.dispose()
    return f"{shown}: connected"


def _own_signing_key(me: str, protocol: Protocol, secret: SecretLookup) -> str:
    from transfers.crypto import SIGNING_KEY_VAR, party_signing_key

    key = party_signing_key(secret, protocol, me, margin=KEY_MARGIN)
    until = f"valid until {key.expires_at:%Y-%m-%d}" if key.expires_at else "does not expire"
    return f"secret {SIGNING_KEY_VAR}: {key.fingerprint}, the pinned signing key of {me}, for receipts, {until}"


def _sender_key(sender: str, protocol: Protocol, keys_dir: Path, margin: timedelta) -> str:
    from transfers.crypto import load_signing_key

    signatory = protocol.signatory(sender)
    if signatory is None or not signatory.signing_fingerprint:
        raise ConfigError(f"{sender}: no signing_fingerprint in protocol.yaml; its deliveries cannot be verified")
    key = load_signing_key(keys_dir / signatory.key_file, signatory.signing_fingerprint, margin=margin)
    until = f"valid until {key.expires_at:%Y-%m-%d}" if key.expires_at else "does not expire"
    return f"{signatory.key_file}: {key.fingerprint}, the sender's pinned signing key, {until}"
