"""The Airflow plugin: the pages' FastAPI app in the API server, and links to it from Airflow's UI.

Registered by the ``airflow.plugins`` entry point (pyproject.toml), so ``pip install isp-transfers``
is enough. Every Airflow process loads plugins (the scheduler, the DAG processor, each task's
runner), and only the API server serves pages: so this module imports nothing but Airflow's plugin
base, and the app (FastAPI, the templates, the project's code) is built on the first request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from transfers_airflow.ui import URL_PREFIX

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Airflow's UI shows each DAG's page with a "Transfers" tab: the flow's pages, in a frame
#: (``url_route``), ``{DAG_ID}`` filled in by the UI; the nav bar's Browse menu gets the index.
EXTERNAL_VIEWS = [
    {
        "name": "Transfers",
        "href": f"{URL_PREFIX}/",
        "destination": "nav",
        "url_route": "transfers",
        "category": "browse",
    },
    {"name": "Transfers", "href": f"{URL_PREFIX}/dags/{{DAG_ID}}", "destination": "dag", "url_route": "transfers-flow"},
]


class Pages:
    """The pages' ASGI app (``transfers_airflow.ui.app``), built when the API server first routes a request to it.

    Importing FastAPI and the app costs ~0.2 s: not in every task's runner, which loads plugins too.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:  # no await before the assignment: two first requests cannot both build it
            from transfers_airflow.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class TransfersPlugin(AirflowPlugin):
    """Scorecards, rectification notices, the IG report, the agreement and the subject look-up."""

    name = "isp_transfers"
    fastapi_apps = [{"app": Pages(), "url_prefix": URL_PREFIX, "name": "isp-transfers pages"}]
    external_views = EXTERNAL_VIEWS
