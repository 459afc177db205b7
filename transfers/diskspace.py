"""Writes to the local disk that fail for lack of space, as a clear, retriable error.

A full disk is not bad data: the same run succeeds once space is freed, so it is
``WorkspaceFull`` (retriable) naming the place, never a traceback or a half-written
file taken for a whole one.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transfers.errors import WorkspaceFull

_FULL = {errno.ENOSPC, errno.EDQUOT}


def full_disk(exc: OSError, place: Path | str, what: str) -> WorkspaceFull | None:
    """``WorkspaceFull`` for "no space left" (or quota exceeded), naming ``place``; None for any other error."""
    if exc.errno not in _FULL:
        return None
    reason = "disk quota exceeded" if exc.errno == errno.EDQUOT else "no space left on the device"
    return WorkspaceFull(f"{place}: {reason} while writing {what}; free space there (or move "
                         "TRANSFERS_HOME) and run again: nothing was sent")


@contextmanager
def writing(place: Path | str, what: str) -> Iterator[None]:
    """Turn "no space left" (or quota exceeded) inside the block into ``WorkspaceFull`` naming ``place``."""
    try:
        yield
    except OSError as exc:
        full = full_disk(exc, place, what)
        if full is None:
            raise
        raise full from None
