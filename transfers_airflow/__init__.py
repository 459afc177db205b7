"""The Airflow edge: the one place outside ``dags/`` that imports Airflow.

``transfers/`` never imports Airflow, so its steps take credentials as plain
values. This package turns Airflow Connections and Variables into those values
(``resolvers``) and gives the ``transfers`` console command Airflow's lookups
(``cli``), so the CLI and the DAGs find the same connections: the configured
secrets backend, the metastore (``airflow connections add``) and the
``AIRFLOW_CONN_*`` / ``AIRFLOW_VAR_*`` environment variables.
"""
