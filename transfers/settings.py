"""Runtime settings, from ``TRANSFERS_*`` environment variables, and the layout of ``TRANSFERS_HOME``.

Secrets are not settings: they are resolved by name through Airflow
Variables/Connections or their ``AIRFLOW_VAR_*``/``AIRFLOW_CONN_*`` variables.

``HomeLayout`` is the only code that knows where things live under the home
(runs, outbox, archive, reports, notices, logs, running markers, the purge
journal, the default ledger). Retention purges by enumerating the same object
the pipeline writes with, so the two cannot drift apart; the (agreement, flow,
date) of a path comes from walking the layout's own shape, never from a regex
over a path someone else may have written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from transfers.errors import ConfigError

if TYPE_CHECKING:
    from transfers.ledger import Ledger

PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: What makes a working directory's ``config/`` this project's: Airflow's own compose file mounts a
#: ``config/`` (airflow.cfg) in the working directory of its containers.
CONFIG_MARKER = "protocol.yaml"

#: Folders directly under the home, each the layout's own; an archive dir may not be one of them.
RUNS, OUTBOX, REPORTS, NOTICES, LOGS, RUNNING = "runs", "outbox", "reports", "notices", "logs", "running"
INBOX, QUARANTINE, INBOX_CACHE = "inbox", "quarantine", "inbox-cache"
HOME_FOLDERS = (OUTBOX, RUNS, REPORTS, NOTICES, LOGS, RUNNING, "retention", "ig-reports", "locks", INBOX, QUARANTINE,
                INBOX_CACHE, "alerts")

#: Folders holding copies the purge deletes; ``archive`` is wherever the agreement puts it.
DatedFolder = Literal["runs", "outbox", "archive", "logs", "running"]
_CHECK = ".check"  # suffix of a dry run's working directory, beside the real run's


def _day(name: str) -> date | None:
    """The date of a name the layout wrote with ``date.isoformat()``; None for anything else.

    ``fromisoformat`` alone accepts ``20261120`` and week dates too: only its own exact text counts.
    """
    try:
        day = date.fromisoformat(name)
    except ValueError:
        return None
    return day if day.isoformat() == name else None


@dataclass(frozen=True)
class Dated:
    """A folder or file the layout made for one (agreement, flow, date[, partner])."""

    path: Path
    agreement: str
    flow: str
    day: date
    partner: str | None = None


@dataclass(frozen=True)
class Held:
    """One file found in a place: its path and, when the layout's shape says so, its run's date."""

    path: Path
    day: date | None = None
    partner: str | None = None


@dataclass(frozen=True)
class HomeLayout:
    """Every path under ``TRANSFERS_HOME``, built and enumerated by one object.

    ``<home>/runs/<agreement>/<flow>/<date>[.check]/``          a run's encrypted working files
    ``<home>/outbox/<agreement>/<flow>/<date>/<partner>/``       encrypted deliveries, reused on a retry
    ``<archive dir>/<agreement>/<flow>/<date>/<partner>/``       archived deliveries (dir named by the agreement)
    ``<home>/reports/<agreement>/<flow>/[dry-run/]``             quality reports ``<kind>_<flow>_<date>.*``
    ``<home>/notices/<agreement>/<flow>/<partner>/``             notices sent to partners
    ``<home>/logs/<agreement>/<flow>/<date>.log``                run logs
    ``<home>/running/<agreement>/<flow>/<date>.json``            markers of runs in progress
    ``<home>/inbox/<path>/``                                     (recipient) where partners' deliveries land,
                                                                 unless ``TRANSFERS_INBOX_DIR`` names the SFTP root
    ``<home>/quarantine/<agreement>/<flow>/<date>/<sender>/``    (recipient) rejected deliveries, still encrypted
    ``<home>/inbox-cache/<agreement>/<flow>/<date>/``            (recipient with a remote mailbox) one delivery's
                                                                 encrypted files while it is received, then removed
    ``<home>/retention/unrecorded.jsonl``                        deletions the ledger could not record yet
    ``<home>/ig-reports/``, ``<home>/ledger.db``, ``<home>/ledger.head``, ``<home>/received.db`` (a recipient's store)
    """

    home: Path

    # ------------------------------------------------------------------ one run's places

    @staticmethod
    def delivery_parts(agreement: str, flow: str, day: date, partner: str) -> tuple[str, ...]:
        """The folders of one delivery, the same in the outbox, a local archive and an S3 archive."""
        return agreement, flow, day.isoformat(), partner

    def run_dir(self, agreement: str, flow: str, day: date) -> Path:
        return self.home / RUNS / agreement / flow / day.isoformat()

    def check_dir(self, agreement: str, flow: str, day: date) -> Path:
        """A dry run's working directory: beside the real run's, so it never touches it."""
        return self.home / RUNS / agreement / flow / f"{day.isoformat()}{_CHECK}"

    def outbox_dir(self, agreement: str, flow: str, day: date, partner: str) -> Path:
        return self.home.joinpath(OUTBOX, *self.delivery_parts(agreement, flow, day, partner))

    def reports_dir(self, agreement: str, flow: str) -> Path:
        return self.home / REPORTS / agreement / flow

    def dry_run_reports_dir(self, agreement: str, flow: str) -> Path:
        return self.reports_dir(agreement, flow) / "dry-run"

    @staticmethod
    def report_stem(flow: str, day: date) -> str:
        """The stem every report of one run ends with (``quality_<stem>.html``, ``rectification_<stem>.csv``)."""
        return f"{flow}_{day.isoformat()}"

    def notices_dir(self, agreement: str, flow: str, partner: str) -> Path:
        return self.home / NOTICES / agreement / flow / partner

    def log_path(self, agreement: str, flow: str, day: date) -> Path:
        return self.home / LOGS / agreement / flow / f"{day.isoformat()}.log"

    def running_marker(self, agreement: str, flow: str, day: date) -> Path:
        return self.home / RUNNING / agreement / flow / f"{day.isoformat()}.json"

    def quarantine_dir(self, agreement: str, flow: str, day: date, sender: str) -> Path:
        """A rejected delivery's files, as received (still encrypted), with the reason beside them."""
        return self.home.joinpath(QUARANTINE, agreement, flow, day.isoformat(), sender)

    def mailbox_cache(self, agreement: str, flow: str, day: date) -> Path:
        """Where one delivery fetched from a remote mailbox is checked and loaded (owner-only, encrypted
        files only); removed when its receive ends."""
        return self.home.joinpath(INBOX_CACHE, agreement, flow, day.isoformat())

    # ------------------------------------------------------------------ the home's own files

    @property
    def journal(self) -> Path:
        return self.home / "retention" / "unrecorded.jsonl"

    @property
    def ig_reports(self) -> Path:
        return self.home / "ig-reports"

    @property
    def ledger_db(self) -> Path:
        return self.home / "ledger.db"

    @property
    def ledger_head(self) -> Path:
        return self.home / "ledger.head"

    @property
    def store_db(self) -> Path:
        """(recipient) the default SQLite store received rows are loaded into."""
        return self.home / "received.db"

    def archive_root(self, folder: str | None) -> Path:
        """A local archive folder named by an agreement, always strictly inside the home.

        Raises:
            ConfigError: it is the home itself or outside it (the agreement loader checks this too).
        """
        home = Path(os.path.normpath(self.home))
        root = Path(os.path.normpath(self.home / (folder or "")))
        if root == home or not root.is_relative_to(home):
            raise ConfigError(f"retention.archive.dir: {folder!r} must be a folder under TRANSFERS_HOME ({self.home})")
        return root

    def folder(self, name: str) -> Path:
        """A folder directly under the home (one of ``HOME_FOLDERS``)."""
        if name not in HOME_FOLDERS:
            raise ValueError(f"{name!r} is not a folder of the home layout ({', '.join(HOME_FOLDERS)})")
        return self.home / name

    # ------------------------------------------------------------------ enumeration, by the same shape

    def dated(self, folder: DatedFolder, agreement: str, flow: str, *, root: Path | None = None) -> Iterator[Dated]:
        """What the layout made for each date of one flow in ``folder``, walking its own shape.

        ``runs``: the run (and dry-run) directories; ``outbox`` and ``archive`` (``root`` is the
        archive's folder): one directory per (date, partner); ``logs`` and ``running``: one file
        per date. Anything not in that shape (a folder named otherwise, a stray file) is not
        the layout's and is skipped, so a purge never takes it for a run's copy.
        """
        if folder == "archive":
            if root is None:
                raise ValueError("the archive's folder is named by the agreement: pass root=")
            base = root / agreement / flow
        else:
            base = self.home / folder / agreement / flow
        if not base.is_dir() or base.is_symlink():
            return
        for entry in sorted(base.iterdir()):
            if entry.is_symlink():
                continue
            if folder == "runs":
                day = _day(entry.name.removesuffix(_CHECK))
                if day is not None and entry.is_dir():
                    yield Dated(entry, agreement, flow, day)
            elif folder in ("outbox", "archive"):
                day = _day(entry.name)
                if day is None or not entry.is_dir():
                    continue
                for partner in sorted(entry.iterdir()):
                    if partner.is_dir() and not partner.is_symlink():
                        yield Dated(partner, agreement, flow, day, partner.name)
            else:
                suffix = ".log" if folder == "logs" else ".json"
                day = _day(entry.name.removesuffix(suffix)) if entry.name.endswith(suffix) else None
                if day is not None and entry.is_file():
                    yield Dated(entry, agreement, flow, day)

    def held(self, place: str, agreement: str, flow: str, *, root: Path | None = None) -> Iterator[Held]:
        """Every file one flow keeps in a retention place (``runs``, ``outbox``, ``archive``, ``reports``,
        ``notices``, ``logs``), with its run's date where the layout put one in the shape.

        Reports and notices are one folder per flow: every file in it is the flow's; a report's
        date is the end of the stem the layout gave it (``report_stem``), a notice has none (it
        covers a subject's disclosures, not one run).
        """
        if place in ("reports", "notices"):
            base = self.home / place / agreement / flow
            for path in _files(base):
                day = _day(path.name.split(".", 1)[0].rpartition("_")[2]) if place == "reports" else None
                yield Held(path, day)
            return
        for found in self.dated(place, agreement, flow, root=root):  # type: ignore[arg-type]
            for path in ([found.path] if found.path.is_file() else _files(found.path)):
                yield Held(path, found.day, found.partner)

    def quarantined(self, agreement: str, flow: str) -> Iterator[Dated]:
        """Each quarantine folder of one flow (``<date>/<sender>`` or ``<date>/<sender>.N``), ``partner`` the sender."""
        base = self.home / QUARANTINE / agreement / flow
        if not base.is_dir() or base.is_symlink():
            return
        for entry in sorted(base.iterdir()):
            day = _day(entry.name)
            if day is None or not entry.is_dir() or entry.is_symlink():
                continue
            for folder in sorted(entry.iterdir()):
                if folder.is_dir() and not folder.is_symlink():
                    sender, _, number = folder.name.rpartition(".")
                    yield Dated(folder, agreement, flow, day, sender if sender and number.isdigit() else folder.name)

    def running_days(self, agreement: str, flow: str) -> set[date]:
        return {found.day for found in self.dated("running", agreement, flow)}


def _files(base: Path) -> list[Path]:
    if not base.is_dir() or base.is_symlink():
        return []
    return sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink())


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

    @property
    def layout(self) -> HomeLayout:
        return HomeLayout(self.home)

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
