"""Where things live: the layout of ``TRANSFERS_HOME`` (``HomeLayout``), and of the shared work root.

``HomeLayout`` is the only code that knows where things live under the home
(runs, outbox, archive, reports, notices, logs, running markers, the purge
journal, the default ledger). Retention purges by enumerating the same object
the pipeline writes with, so the two cannot drift apart; the (agreement, flow,
date) of a path comes from walking the layout's own shape, never from a regex
over a path someone else may have written.

A run's working places (``runs/`` and ``outbox/``) may live under another root than the home
(``TRANSFERS_WORK_STORE`` naming a shared volume every worker mounts): ``work`` below.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Literal

from transfers.errors import ConfigError

#: Folders directly under the home, each the layout's own; an archive dir may not be one of them.
RUNS, OUTBOX, REPORTS, NOTICES, LOGS, RUNNING = "runs", "outbox", "reports", "notices", "logs", "running"
INBOX, QUARANTINE, INBOX_CACHE = "inbox", "quarantine", "inbox-cache"
HOME_FOLDERS = (OUTBOX, RUNS, REPORTS, NOTICES, LOGS, RUNNING, "retention", "ig-reports", "locks", INBOX, QUARANTINE,
                INBOX_CACHE, "alerts", "tasks")
#: The folders of runs in progress, under the work root (the home, a shared volume, or one task's checkout).
WORK_FOLDERS = (RUNS, OUTBOX, RUNNING)

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


def layout_day(name: str) -> date | None:
    """The date a folder or file name of the layout's shape holds (``2026-11-25``, ``2026-11-25.check``,
    ``2026-11-25.json``); None for any other name. For shapes read from elsewhere (an object store's keys)."""
    for suffix in (_CHECK, ".json", ".log"):
        name = name.removesuffix(suffix)
    return _day(name)


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

    ``<work>/runs/<agreement>/<flow>/<date>[.check]/``          a run's encrypted working files
    ``<work>/outbox/<agreement>/<flow>/<date>/<partner>/``       encrypted deliveries, reused on a retry
                                                                 (``<work>``: the home, or a shared volume)
    ``<archive dir>/<agreement>/<flow>/<date>/<partner>/``       archived deliveries (dir named by the agreement)
    ``<home>/reports/<agreement>/<flow>/[dry-run/]``             quality reports ``<kind>_<flow>_<date>.*``
    ``<home>/notices/<agreement>/<flow>/<partner>/``             notices sent to partners
    ``<home>/logs/<agreement>/<flow>/<date>.log``                run logs
    ``<work>/running/<agreement>/<flow>/<date>.json``            markers of runs in progress
    ``<home>/tasks/<random>/``                                   (S3 work store) one task's checkout of its run
    ``<home>/inbox/<path>/``                                     (recipient) where partners' deliveries land,
                                                                 unless ``TRANSFERS_INBOX_DIR`` names the SFTP root
    ``<home>/quarantine/<agreement>/<flow>/<date>/<sender>/``    (recipient) rejected deliveries, still encrypted
    ``<home>/inbox-cache/<agreement>/<flow>/<date>/``            (recipient with a remote mailbox) one delivery's
                                                                 encrypted files while it is received, then removed
    ``<home>/retention/unrecorded.jsonl``                        deletions the ledger could not record yet
    ``<home>/ig-reports/``, ``<home>/ledger.db``, ``<home>/ledger.head``, ``<home>/received.db`` (a recipient's store)
    """

    home: Path
    work: Path | None = None
    """Where ``runs/``, ``outbox/`` and ``running/`` live when not under the home: a shared volume every worker
    mounts, or (an S3 work store) the one task's own checkout under ``tasks/``."""

    @property
    def work_root(self) -> Path:
        """The folder holding ``runs/``, ``outbox/`` and ``running/``: the shared volume, else the home."""
        return self.work or self.home

    @property
    def tasks(self) -> Path:
        """(S3 work store) each task's own checkout of its run, ``tasks/<random>/``, removed when it ends."""
        return self.home / "tasks"

    # ------------------------------------------------------------------ one run's places

    @staticmethod
    def delivery_parts(agreement: str, flow: str, day: date, partner: str) -> tuple[str, ...]:
        """The folders of one delivery, the same in the outbox, a local archive and an S3 archive."""
        return agreement, flow, day.isoformat(), partner

    def run_dir(self, agreement: str, flow: str, day: date) -> Path:
        return self.work_root / RUNS / agreement / flow / day.isoformat()

    def check_dir(self, agreement: str, flow: str, day: date) -> Path:
        """A dry run's working directory: beside the real run's, so it never touches it."""
        return self.work_root / RUNS / agreement / flow / f"{day.isoformat()}{_CHECK}"

    def outbox_dir(self, agreement: str, flow: str, day: date, partner: str) -> Path:
        return self.work_root.joinpath(OUTBOX, *self.delivery_parts(agreement, flow, day, partner))

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
        return self.work_root / RUNNING / agreement / flow / f"{day.isoformat()}.json"

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

    def at(self, relative: str) -> Path:
        """The path a work store names relative to the home (``reports/<a>/<f>``), never outside it.

        Raises:
            ValueError: ``relative`` is absolute or climbs out (``..``).
        """
        parts = PurePosixPath(relative).parts
        if not parts or parts[0] == "/" or ".." in parts:
            raise ValueError(f"{relative!r} is not a path inside the home")
        return self.home.joinpath(*parts)

    def folder(self, name: str) -> Path:
        """A folder directly under the home (one of ``HOME_FOLDERS``)."""
        if name not in HOME_FOLDERS:
            raise ValueError(f"{name!r} is not a folder of the home layout ({', '.join(HOME_FOLDERS)})")
        return (self.work_root if name in WORK_FOLDERS else self.home) / name

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
            base = self.folder(folder) / agreement / flow
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
