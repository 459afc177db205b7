"""Runtime settings, from ``TRANSFERS_*`` environment variables; the layout of ``TRANSFERS_HOME`` is re-exported.

Secrets are not settings: they are resolved by name through Airflow
Variables/Connections or their ``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*`` variables.

``HomeLayout`` (in :mod:`transfers.layout`, imported from here too) is the only code that knows where
things live under the home.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from transfers.errors import ConfigError
from transfers.layout import (  # re-exported: the layout was part of this module, and callers import it from here
    HOME_FOLDERS,
    INBOX,
    INBOX_CACHE,
    LOGS,
    NOTICES,
    OUTBOX,
    QUARANTINE,
    REPORTS,
    RUNNING,
    RUNS,
    Dated,
    DatedFolder,
    Held,
    HomeLayout,
)

if TYPE_CHECKING:
    from transfers.ledger import Ledger

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: What makes a working directory's ``config/`` this project's: Airflow's own compose file mounts a
#: ``config/`` (airflow.cfg) in the working directory of its containers.
CONFIG_MARKER = "protocol.yaml"

__all__ = ["HOME_FOLDERS", "INBOX", "INBOX_CACHE", "LOGS", "NOTICES", "OUTBOX", "QUARANTINE", "REPORTS", "RUNNING",
           "RUNS", "Dated", "DatedFolder", "Held", "HomeLayout", "Settings", "default_base"]


def default_base(cwd: Path | None = None, root: Path | None = None) -> Path | None:
    """The directory whose ``config/``, ``keys/`` and ``var/`` are the defaults: the working directory
    when its ``config/`` holds ``protocol.yaml``, else a source checkout (``pyproject.toml`` beside the
    package); None for an installed copy run anywhere else, whose own folder is site-packages.
    """
    cwd, root = cwd or Path.cwd(), root or PROJECT_ROOT
    if (cwd / "config" / CONFIG_MARKER).is_file():
        return cwd
    return root if (root / "pyproject.toml").is_file() else None


def _default_config_dir() -> Path:
    base = default_base()
    if base is None:
        raise ConfigError(f"no config directory: TRANSFERS_CONFIG_DIR is not set and there is no "
                          f"{Path.cwd() / 'config' / CONFIG_MARKER}; run transfers in the directory that holds "
                          f"config/ (keys/ and var/ go beside it), or set TRANSFERS_CONFIG_DIR (and TRANSFERS_HOME "
                          f"for its state)")
    return base / "config"


def _default_home(fields: dict[str, Any]) -> Path:
    """``var/`` in the default base; an install with none keeps its state beside the config it was given."""
    base = default_base()
    if base is not None:
        return base / "var"
    # No config_dir here means it failed validation, and that error is the one raised.
    return Path(fields.get("config_dir") or ".").parent / "var"


class Settings(BaseSettings):
    """Where a deployment keeps its config and its state."""

    # Docker/Kubernetes secrets: /run/secrets/transfers_ledger_url overrides nothing set in env.
    model_config = SettingsConfigDict(
        env_prefix="TRANSFERS_",
        extra="ignore",
        frozen=True,
        secrets_dir="/run/secrets" if Path("/run/secrets").is_dir() else None,
    )

    # config_dir before home: home's default is found from it.
    config_dir: Path = Field(default_factory=_default_config_dir,
                             description="protocol.yaml and agreements/; default ./config when it holds "
                                         "protocol.yaml, else the source checkout's")
    home: Path = Field(default_factory=_default_home,
                       description="state: runs, outbox archive, reports, ledger; default var/ beside config/")
    keys_dir: Path | None = Field(default=None, description="partners' public keys; default <config>/../keys")
    ledger_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite under home")
    delivery_max_rows: int = Field(default=250_000, ge=1, description="rows per delivered file")
    part_rows: int = Field(default=250_000, ge=1, description="rows per mapped quality task in the DAG (whole "
                                                              "extract staging parts, so at least one part each)")
    compression: Literal["none", "zip", "zlib"] = Field(
        default="zip", description="how each delivered file is compressed inside its encryption: `zip` (raw "
                                   "DEFLATE, read by every OpenPGP tool), `zlib`, or `none`. Measured on a part "
                                   "of 250k pseudonymised rows (27 MB of CSV, signed): zip at level 1 takes 0.7 s "
                                   "and writes 12.3 MB, none 0.5 s and 27 MB. So zip by default: the 15 MB it "
                                   "saves take longer to send than its 0.25 s over any link under 480 Mbit/s")
    compression_level: int = Field(default=1, ge=1, le=9,
                                   description="zlib level for zip/zlib, 1 (fastest) to 9 (smallest): level 6 "
                                               "(pgpy's and gpg's default) is 7% smaller than 1 and twice as slow, "
                                               "9 another 1% smaller and five times as slow")
    encrypt_workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        default="auto", description="processes that encrypt a delivery's files at once; `auto`: one per CPU, "
                                    "never more than the files")
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
    poke_seconds: float = Field(default=300.0, gt=0, le=86400,
                                description="how often a waiting DAG task (a receive sensor, a receipt sensor) "
                                            "looks again; between looks it holds no worker slot")
    party: str | None = Field(default=None, description="this deployment's own party, a Tier 1 signatory id: "
                                                        "send DAGs for flows from it, receive DAGs for flows to it")
    inbox_dir: Path | None = Field(default=None, description="(recipient) the directory its SFTP server writes "
                                                             "partners' deliveries into; a flow's `path` is under "
                                                             "it; default <home>/inbox")
    mailbox: str | None = Field(default=None, description="(recipient) connection id of a remote SFTP mailbox "
                                                          "it polls (host keys pinned in extra.host_key(s)) instead of "
                                                          "a local inbox; a flow's `path` is the directory there, "
                                                          "and TRANSFERS_INBOX_DIR is not used for receiving")
    store_url: str | None = Field(default=None, description="(recipient) SQLAlchemy URL of the store received "
                                                            "rows are loaded into, one table per flow; default "
                                                            "SQLite under home")
    ledger_anchor_url: str | None = Field(default=None, description="external ledger anchor: a file on another "
                                                                    "volume or s3://bucket/key (versioned)")
    destruction_grace_days: int = Field(default=30, ge=0, le=3650,
                                        description="(controller) days after a disclosure's destroy-by with no "
                                                    "signed destruction certificate from its recipient before it "
                                                    "is overdue (IG report, ledger verify)")
    alerts_conn_id: str = Field(default="smtp_default", description="the Airflow SMTP connection alerts are sent "
                                                                    "through (a contact may name its own notifier)")
    alerts_from: str = Field(default="isp-transfers@localhost", description="the From address of alerts")
    work_store: str = Field(default="local", description="where a run's working files (runs/, outbox/; all "
                                                         "encrypted) live: `local` (under the home: one machine), "
                                                         "an absolute path of a volume every worker mounts, or "
                                                         "`s3://bucket/prefix` (each task checks them out and back)")
    work_store_conn_id: str | None = Field(default=None, description="connection id (aws type) of the S3 work "
                                                                     "store; unset: the standard AWS chain "
                                                                     "(AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID...)")
    workers: Literal["one", "many"] = Field(default="one", description="`many` when tasks run on several worker "
                                                                       "machines: then the ledger must be PostgreSQL, "
                                                                       "the work store shared, the anchor external")

    # Not a setting: one task's own checkout of its run (S3 work store), set by ``for_task``.
    _task_root: Path | None = PrivateAttr(default=None)

    def for_task(self, root: Path) -> Settings:
        """These settings with the run's working places (runs/, outbox/, running/) under ``root``."""
        copy = self.model_copy()
        copy._task_root = root
        return copy

    @field_validator("work_store")
    @classmethod
    def _work_store(cls, value: str) -> str:
        from transfers.workstore.where import parse_work_store

        parse_work_store(value)  # a ConfigError naming TRANSFERS_WORK_STORE, not pydantic's wrapped ValueError
        return value

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, value: object) -> object:
        if value not in ("one", "many"):  # a ConfigError naming the setting, not pydantic's wrapped ValueError
            raise ConfigError(f"TRANSFERS_WORKERS: {value!r} is neither `one` (one worker machine) nor `many`")
        return value

    @property
    def layout(self) -> HomeLayout:
        from transfers.workstore.where import parse_work_store

        where = parse_work_store(self.work_store)
        return HomeLayout(self.home, work=self._task_root or (where if isinstance(where, Path) else None))

    @property
    def keys(self) -> Path:
        return self.keys_dir or self.config_dir.parent / "keys"

    @property
    def ledger_database(self) -> str:
        return self.ledger_url or f"sqlite:///{self.layout.ledger_db.resolve()}"

    @property
    def inbox(self) -> Path:
        return self.inbox_dir or self.home / INBOX

    @property
    def store_database(self) -> str:
        return self.store_url or f"sqlite:///{self.layout.store_db.resolve()}"

    @property
    def ledger_anchor(self) -> Path:
        return self.layout.ledger_head

    def open_ledger(self) -> Ledger:  # the ledger is imported here, lazily, to keep DAG parsing light
        """The ledger, to be closed: ``with settings.open_ledger() as ledger:``."""
        from transfers.ledger import Ledger
        from transfers.ledger.anchor import open_anchor

        self.home.mkdir(parents=True, exist_ok=True)
        return Ledger(self.ledger_database, anchor_path=self.ledger_anchor,
                      external_anchor=open_anchor(self.ledger_anchor_url))
