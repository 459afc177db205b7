"""Airflow Connections and Variables as the plain values ``transfers`` steps take.

Airflow is imported on the first lookup, not at import time: ``transfers --help``
and commands that resolve nothing stay fast, and a machine without an Airflow
metadata database still resolves ``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*``.
"""

from __future__ import annotations

from typing import Any

from transfers.connections import ConnInfo
from transfers.errors import RetriableError, SecretMissing


def conn_info(conn_id: str, conn: Any) -> ConnInfo:
    """An Airflow connection (Task SDK or core model) as a ``ConnInfo``; its secrets are masked in logs."""
    from airflow.sdk.log import mask_secret

    extra = conn.extra_dejson or {}
    # The secret fields of the sftp, postgres and aws connection forms (transfers.connections reads them).
    for secret in (conn.password, extra.get("private_key"), extra.get("private_key_passphrase"),
                   extra.get("aws_secret_access_key"), extra.get("aws_session_token"), extra.get("sslpassword")):
        if secret:
            mask_secret(secret)
    return ConnInfo(
        conn_id=conn_id,
        conn_type=conn.conn_type or "",
        host=conn.host,
        port=conn.port,
        login=conn.login,
        password=conn.password,
        schema=conn.schema,
        extra=extra,
    )


def connection(conn_id: str) -> ConnInfo:
    """Resolve a connection outside a task: secrets backend, metastore, then ``AIRFLOW_CONN_<ID>``.

    This is Airflow's own search order for a process that is not a task (the
    ``airflow`` command uses it). Inside a task the DAG uses the Task SDK instead.

    Raises:
        SecretMissing: no backend knows the id.
        RetriableError: a backend failed in a way Airflow does not treat as "not found".
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise SecretMissing(
            f"connection {conn_id!r} is not defined: add it with `airflow connections add {conn_id} ...`, "
            f"in the secrets backend, or as AIRFLOW_CONN_{conn_id.upper()} (URI or JSON)"
        ) from None
    except Exception as exc:  # a backend's own error; its text may quote a URL with a password
        raise RetriableError(f"connection {conn_id!r}: Airflow's secrets backends failed "
                                f"({type(exc).__name__}); try again or check the backend") from None
    return conn_info(conn_id, conn)


def secret(name: str) -> str:
    """Resolve a secret outside a task: an Airflow Variable from any backend, or ``AIRFLOW_VAR_<NAME>``."""
    from airflow.models.variable import Variable
    from airflow.sdk.log import mask_secret

    try:
        value = Variable.get_variable_from_secrets(name)
    except Exception as exc:  # as above: never let a backend's message through
        raise RetriableError(f"secret {name!r}: Airflow's secrets backends failed ({type(exc).__name__})") from None
    if not value:
        raise SecretMissing(f"secret {name!r} is not set: add it with `airflow variables set {name} ...`, "
                            f"in the secrets backend, or as AIRFLOW_VAR_{name.upper()}")
    mask_secret(value)
    return value
