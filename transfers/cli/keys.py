"""``transfers keys staging``: keys and secrets for a deployment."""

from __future__ import annotations

import typer

app = typer.Typer(help="Keys and secrets for a deployment.", no_args_is_help=True)


@app.command("staging")
def keys_staging() -> None:
    """Print a new staging key (set it as the Airflow Variable transfers_staging_key)."""
    from transfers.staging import new_staging_key

    print(new_staging_key())
