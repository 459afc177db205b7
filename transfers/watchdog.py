"""A deadline for blocking network calls that have no limit of their own.

paramiko bounds some waits but not all: it waits for the answer to the SFTP
subsystem request without a limit, and a write blocked on a full TCP buffer
retries until the socket closes. A ``Watchdog`` runs one thread per
connection; each step arms it (long transfers push the deadline on with every
chunk), and when a deadline passes it calls ``close``, which wakes every
blocked call with an error, and remembers what was stalled for the message.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["Watchdog"]


class Watchdog:
    """Calls ``close`` once an armed step makes no progress for ``timeout`` seconds.

    Attributes:
        stalled: What the step that ran out was doing (as given to ``arm``), or ``None``.
    """

    def __init__(self, timeout: float, close: Callable[[], object]) -> None:
        self.timeout = timeout
        self.stalled: str | None = None
        self._close = close
        self._what = ""
        self._deadline: float | None = None
        self._stopped = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="sftp-watchdog", daemon=True)
        self._thread.start()

    def arm(self, what: str) -> None:
        with self._cv:
            self._what, self._deadline = what, time.monotonic() + self.timeout
            self._cv.notify()

    def touch(self) -> None:
        """Progress was made: the current step gets a fresh ``timeout``."""
        if self._deadline is not None:
            self._deadline = time.monotonic() + self.timeout

    def disarm(self) -> None:
        with self._cv:
            self._deadline = None

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()

    def _run(self) -> None:
        with self._cv:
            while not self._stopped:
                if self._deadline is None:
                    self._cv.wait()
                    continue
                remaining = self._deadline - time.monotonic()
                if remaining > 0:
                    self._cv.wait(remaining)
                    continue
                self.stalled = self._what
                break
        if self.stalled is not None:
            self._close()
