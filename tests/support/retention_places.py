"""Files in every local place of a flow, and a folder nothing can be deleted from, for the retention tests.

Shared by the modules of ``tests/unit/retention/`` (purge, local pruning, the journal), so it lives here
rather than in one test file (a test file is never imported by another).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import require_part

DS = "2026-11-20"


def put(path: Path, text: str = "ciphertext") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def copies(home: Path, flow: str = "A", ds: str = DS) -> dict[str, Path]:
    """One file in every local place of one (flow, date)."""
    base = Path("mash-referrals") / flow
    return {
        "outbox": put(home / "outbox" / base / ds / "south-yorkshire-police" / f"mash-referrals_{flow}_{ds}.csv.pgp"),
        "runs": put(home / "runs" / base / ds / "extract" / "part-0001.bin"),
        "archive": put(home / "archive" / base / ds / "south-yorkshire-police" / f"mash-referrals_{flow}_{ds}.csv.pgp"),
        "reports": put(home / "reports" / base / f"quality_{ds}.html"),
        "notices": put(home / "notices" / base / f"rectification_{ds}.csv"),
        "logs": put(home / "logs" / base / f"{ds}.log"),
    }


def never_connect(conn_id: str):
    raise AssertionError(f"no connection should be needed for local places ({conn_id})")


@contextlib.contextmanager
def undeletable(folder: Path) -> Iterator[None]:
    """Make ``folder``'s files impossible to delete: chmod for a normal user; root ignores
    permissions, so as root the directory is made immutable (``chattr +i``)."""
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    made = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    require_part("chattr +i (a directory even root cannot delete from)", bool(made), "e2fsprogs on ext4/xfs")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
