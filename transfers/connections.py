"""Connections and secrets as plain values, resolved by the caller.

A flow names its connections (``cs_case_db``, ``syp_sftp``) and secrets
(``mash_pseudonym_key``) by id; it never holds credentials. The DAG resolves
them through Airflow Connections and Variables (and so any secrets backend).
The ``transfers`` command does the same through the edge module
``transfers_airflow`` (which installs its lookups with ``install_cli_lookups``),
so a connection added with ``airflow connections add`` is found by both;
without it, the CLI reads the environment variables Airflow itself reads,
``AIRFLOW_CONN_<ID>`` (URI or JSON) and ``AIRFLOW_VAR_<NAME>``.

The connection types are those the Airflow UI edits with the SFTP, Postgres and Amazon
providers installed, read in the providers' shapes by the steps that use them:

- ``sftp``: host, port, login, password; ``extra.host_key`` (a ``ssh-ed25519 AAAA...`` line or
  the base64 key alone) or ``extra.host_keys``, always pinned (``no_host_key_check`` is not
  honoured); ``extra.private_key`` or ``extra.key_file``, with ``extra.private_key_passphrase``
  (``transfers.delivery.target``);
- ``postgres``: the form's "Database" is ``schema``; libpq settings such as ``sslmode`` in the
  extra (``transfers.sources.sqlalchemy_url``);
- ``aws``: access key and secret as login and password; ``extra.region_name``,
  ``extra.endpoint_url``, ``extra.aws_session_token`` (``transfers.retention.s3``, whose client the
  archive and an ``s3`` source both use).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from transfers.errors import ConfigError, SecretMissing


@dataclass(frozen=True)
class ConnInfo:
    """The parts of a connection the steps need. Never printed with its secrets."""

    conn_id: str
    conn_type: str
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)


ConnLookup = Callable[[str], ConnInfo]
SecretLookup = Callable[[str], str]


def parse_connection(conn_id: str, text: str) -> ConnInfo:
    """Parse Airflow's JSON or URI connection form.

    Raises:
        ConfigError: naming the connection id (never its value, which holds secrets).
    """
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"connection {conn_id!r}: JSON form is not valid JSON ({exc.msg})") from None
        raw_extra = data.get("extra") or {}
        if isinstance(raw_extra, str):
            raw_extra = json.loads(raw_extra) if raw_extra.strip() else {}
        extra: dict[str, Any] = raw_extra
        port = data.get("port")
        return ConnInfo(
            conn_id=conn_id,
            conn_type=str(data.get("conn_type", "")),
            host=data.get("host"),
            port=int(port) if port not in (None, "") else None,
            login=data.get("login"),
            password=data.get("password"),
            schema=data.get("schema"),
            extra=extra,
        )
    parts = urlsplit(text)
    if not parts.scheme:
        raise ConfigError(f"connection {conn_id!r}: expected a URI (type://login:password@host:port/schema) or JSON")
    query: dict[str, Any] = dict(parse_qsl(parts.query))
    extra = json.loads(query["__extra__"]) if "__extra__" in query else query
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(f"connection {conn_id!r}: the port is not a number") from None
    return ConnInfo(
        conn_id=conn_id,
        conn_type=parts.scheme.replace("-", "_"),
        host=unquote(parts.hostname) if parts.hostname else None,
        port=port,
        login=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        schema=unquote(parts.path.lstrip("/")) or None,
        extra=extra,
    )


def env_connection(conn_id: str, environ: Mapping[str, str] | None = None) -> ConnInfo:
    """Resolve a connection from ``AIRFLOW_CONN_<ID>``."""
    environ = os.environ if environ is None else environ
    name = f"AIRFLOW_CONN_{conn_id.upper()}"
    if name not in environ:
        raise SecretMissing(f"connection {conn_id!r} is not set: define {name} (URI or JSON) or an Airflow Connection")
    return parse_connection(conn_id, environ[name])


def env_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Resolve a secret from ``AIRFLOW_VAR_<NAME>`` (what Airflow's Variable.get reads)."""
    environ = os.environ if environ is None else environ
    var = f"AIRFLOW_VAR_{name.upper()}"
    value = environ.get(var)
    if not value:
        raise SecretMissing(f"secret {name!r} is not set: define {var} or an Airflow Variable {name!r}")
    return value


# The CLI's lookups. ``transfers/`` never imports Airflow, so the console entry
# (``transfers_airflow.cli``) installs Airflow's own lookups here (secrets backend,
# metastore, then the environment); without it the CLI reads the environment only.
_cli_lookups: dict[str, Callable[[str], Any]] = {}


def install_cli_lookups(connection: ConnLookup, secret: SecretLookup) -> None:
    """Make every CLI command resolve connection and secret ids with these."""
    _cli_lookups.update(connection=connection, secret=secret)


def cli_connection(conn_id: str) -> ConnInfo:
    """A connection for the CLI: the installed lookup, else ``AIRFLOW_CONN_<ID>``."""
    return _cli_lookups.get("connection", env_connection)(conn_id)


def cli_secret(name: str) -> str:
    """A secret for the CLI: the installed lookup, else ``AIRFLOW_VAR_<NAME>``."""
    return _cli_lookups.get("secret", env_secret)(name)
