"""What every benchmark here prints: seconds and rows/second per stage, and peak memory."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def timed(label: str, rows: int, fn: Callable[[], T], *, width: int = 34) -> T:
    """Run ``fn`` once and print how long it took and how many rows a second that is."""
    start = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - start
    print(f"{label:<{width}} {seconds:8.2f} s   {rows / seconds if seconds else 0:12,.0f} rows/s", flush=True)
    return value


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
