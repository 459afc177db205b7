"""Who may see what: Airflow's own login, its DAG permissions, and the IG role.

Every page needs a signed-in Airflow user: the JWT Airflow's UI keeps in its ``_token`` cookie (or
an ``Authorization: Bearer`` token), checked by the API server's own ``get_user``, so whatever auth
manager the deployment runs (SimpleAuthManager, FAB, Keycloak...) decides who is signed in. A
request without a valid one gets 401 and a link to Airflow's login page, never a report.

Then:
    a flow's pages       the user may read that flow's DAG (``is_authorized_dag``, method GET): whoever
                         sees a send DAG in Airflow sees its scorecards, notices, receipts and destruction
    the agreement        the user may read at least one DAG of one of its flows
    IG report, subject   the IG role: a user named in ``[transfers] ig_users`` or holding a role named in
    look-up              ``[transfers] ig_roles`` (Airflow config, or ``AIRFLOW__TRANSFERS__IG_USERS`` /
                         ``AIRFLOW__TRANSFERS__IG_ROLES``, comma-separated). Roles are the auth manager's:
                         FAB's role names, or SimpleAuthManager's (viewer, user, op, admin). Unset: nobody
                         (fail closed), and the page says which setting to add.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, status

SECTION = "transfers"
IG_USERS, IG_ROLES = "ig_users", "ig_roles"


def _listed(key: str) -> set[str]:
    from airflow.configuration import conf

    return {item.strip() for item in (conf.get(SECTION, key, fallback="") or "").split(",") if item.strip()}


def role_names(user: Any) -> set[str]:
    """The role names an auth manager's user carries: SimpleAuthManager's one ``role``, FAB's ``roles``."""
    names = set()
    if isinstance(getattr(user, "role", None), str):
        names.add(user.role.lower())
    for role in getattr(user, "roles", None) or ():
        name = getattr(role, "name", role)
        if isinstance(name, str):
            names.add(name.lower())
    return names


def is_ig(user: Any) -> bool:
    """Whether ``user`` holds the IG role (see the module docstring)."""
    if user.get_name() in _listed(IG_USERS):
        return True
    return bool(role_names(user) & {r.lower() for r in _listed(IG_ROLES)})


def require_ig(user: Any) -> None:
    """Raise 403 (naming the settings that grant the IG role) unless ``user`` holds it."""
    if not is_ig(user):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this page is for the IG role: ask an Airflow admin to add your user name to "
            f"[{SECTION}] {IG_USERS} (AIRFLOW__{SECTION.upper()}__{IG_USERS.upper()}) or one of "
            f"your roles to [{SECTION}] {IG_ROLES}",
        )


def can_read_dag(user: Any, dag_id: str) -> bool:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=user)


def require_dag(user: Any, dag_ids: list[str]) -> None:
    """Raise 403 unless ``user`` may read at least one of ``dag_ids`` in Airflow."""
    if not any(can_read_dag(user, dag_id) for dag_id in dag_ids):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"your Airflow user may not read the DAG {' or '.join(dag_ids)}: ask an Airflow admin",
        )


def login_url(request: Request) -> str:
    """Airflow's login page, coming back to this page once signed in."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=str(request.url))
