"""Runtime settings, from ``TRANSFERS_*`` environment variables.

Secrets are not settings: they are resolved by name through Airflow
Variables/Connections or their ``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*`` variables.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Where a deployment keeps its config and its state."""

    # Docker/Kubernetes secrets: /run/secrets/transfers_ledger_url overrides nothing set in env.
    model_config = SettingsConfigDict(
        env_prefix="TRANSFERS_",
        extra="ignore",
        frozen=True,
        secrets_dir="/run/secrets" if Path("/run/secrets").is_dir() else None,
    )

    home: Path = Field(default=PROJECT_ROOT / "var", description="state: runs, outbox archive, reports, ledger")
    config_dir: Path = Field(default=PROJECT_ROOT / "config", description="protocol.yaml and agreements/")
    keys_dir: Path | None = Field(default=None, description="partners' public keys; default <config>/../keys")
    ledger_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under home")
    delivery_max_rows: int = Field(default=250_000, ge=1, description="rows per delivered file")
    sftp_timeout: float = Field(default=60.0, gt=0, le=3600,
                                description="seconds any one SFTP wait may take (connect, banner, login, "
                                            "channel, each read and write); a recipient may set its own")
    task_timeout_minutes: float = Field(default=180.0, gt=0,
                                        description="longest any one DAG task may run before Airflow stops it")
    run_timeout_hours: float = Field(default=20.0, gt=0, le=23,
                                     description="longest a DAG run may take: under a day, so a hung night "
                                                 "never blocks the next")
    run_lock_ttl: int = Field(default=3600, ge=30, description="seconds without a heartbeat before a run lock "
                                                               "of a killed run is stale and taken over")
    ledger_anchor_url: str | None = Field(default=None, description="external ledger anchor: a file on another "
                                                                    "volume or s3://bucket/key (versioned)")

    @property
    def keys(self) -> Path:
        return self.keys_dir or self.config_dir.parent / "keys"

    @property
    def ledger_database(self) -> str:
        return self.ledger_url or f"sqlite:///{(self.home / 'ledger.db').resolve()}"

    @property
    def ledger_anchor(self) -> Path:
        return self.home / "ledger.head"

    def open_ledger(self):  # noqa: ANN201 - imported lazily to keep DAG parsing light
        """The ledger, to be closed: ``with settings.open_ledger() as ledger:``."""
        from transfers.ledger import Ledger
        from transfers.ledger.anchor import open_anchor

        self.home.mkdir(parents=True, exist_ok=True)
        return Ledger(self.ledger_database, anchor_path=self.ledger_anchor,
                      external_anchor=open_anchor(self.ledger_anchor_url))
