"""Airflow's ``[core] executor``, for the deployment check (``transfers.deployment``) the DAG file runs."""

from __future__ import annotations


def configured_executor() -> str:
    """The executor(s) Airflow runs tasks with (``AIRFLOW__CORE__EXECUTOR`` or airflow.cfg), as configured."""
    from airflow.configuration import conf

    return str(conf.get("core", "executor", fallback=""))
