"""The Airflow plugin: the pages' FastAPI app in the API server, and links to it from Airflow's UI.

Registered by the ``airflow.plugins`` entry point (pyproject.toml), so ``pip install isp-transfers``
is enough. Every Airflow process loads plugins: this module builds the app (FastAPI only) and
imports nothing else of Airflow's or the project's until a page is asked for.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from transfers_airflow.ui.app import URL_PREFIX, create_app

#: Airflow's UI shows each DAG's page with a "Transfers" tab: the flow's pages, in a frame
#: (``url_route``), ``{DAG_ID}`` filled in by the UI; the nav bar gets the index.
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


class TransfersPlugin(AirflowPlugin):
    """Scorecards, rectification notices, the IG report, the agreement and the subject look-up."""

    name = "isp_transfers"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "isp-transfers pages"}]
    external_views = EXTERNAL_VIEWS
