"""The deadline that bounds blocking network calls paramiko leaves without a limit."""

from __future__ import annotations

import threading
import time

from transfers.watchdog import Watchdog


def test_a_step_that_makes_no_progress_is_closed_and_named():
    closed = threading.Event()
    dog = Watchdog(0.2, closed.set)

    dog.arm("starting the SFTP subsystem")

    assert closed.wait(10)
    assert dog.stalled == "starting the SFTP subsystem"


def test_progress_keeps_a_long_transfer_alive_and_a_finished_step_is_never_closed():
    closed = threading.Event()
    dog = Watchdog(0.3, closed.set)

    dog.arm("uploading x")
    for _ in range(10):  # 1 s in all, longer than the timeout, but never 0.3 s without progress
        time.sleep(0.1)
        dog.touch()
    dog.disarm()
    time.sleep(0.5)
    dog.stop()

    assert not closed.is_set() and dog.stalled is None
