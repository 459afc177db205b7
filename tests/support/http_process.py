"""A local HTTP server run as a child process for a test: started, waited for, always stopped."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serving(
    argv: list[str], ready_url: str, log: Path, *, env: dict[str, str], cwd: Path, what: str, seconds: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (its output to ``log``) until ``ready_url`` answers, and stop it when the context ends.

    The wait is bounded (``seconds``), a start-up limit and no timing assertion.

    Raises:
        RuntimeError: the process ended, or did not answer in time; the end of its log is in the message.
    """
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        try:
            deadline = time.monotonic() + seconds
            while True:
                try:
                    with urllib.request.urlopen(ready_url, timeout=5):  # noqa: S310 (a local http URL)
                        break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{what} did not start: {log.read_text(errors='replace')[-3000:]}") from None
                    time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
