"""What pgpy warns about while it works: its own notes dropped, cryptography's deprecations passed on.

pgpy (the ``pgpym`` fork) warns with plain ``UserWarning`` about things we check or choose
ourselves: ``PGPKey.verify`` says "TODO: Revocation checks are not yet implemented!!!" on
every call, encrypting says "Selected compression algorithm not in key preferences" (we
compress the packets ourselves), parsing garbage says "Orphaned packet detected". Noise in a
task log, so dropped; some are attributed to their caller's line (pgpy warns with a
``stacklevel``), so inside ``quiet_pgpy`` every plain ``UserWarning`` counts as pgpy's.

pgpy also reaches three names through the places ``cryptography`` deprecated when it moved
them to ``hazmat.decrepit``: ``TripleDES`` and ``Camellia`` (its cipher table, built on every
encryption; we never select them) and ``CFB`` (OpenPGP's own mode, used by every encryption
and decryption). Those are ``PGPY_DEPRECATIONS``, dropped too when pgpy's own code reaches
them: nothing we can change short of patching pgpy. Every other warning, and so every other
``CryptographyDeprecationWarning``, reaches the caller's filters, which the tests turn into
errors: a ``cryptography`` release that deprecates something more fails the suite before a
later one removes it. When ``cryptography`` removes these three, pgpym must have moved to the
new names first: check before relocking past 50.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.utils import CryptographyDeprecationWarning

__all__ = ["PGPY_DEPRECATIONS", "quiet_pgpy"]

#: The names pgpy 0.6 still reaches through their deprecated places in ``cryptography``.
PGPY_DEPRECATIONS = frozenset({"TripleDES", "Camellia", "CFB"})
_MOVED = re.compile(r"(\w+) has been moved to cryptography\.hazmat\.decrepit\.")
#: Re-issued warnings are shown once per place, as Python's default filter would.
_REGISTRY: dict[str | tuple[str, type[Warning], int], int] = {}


@contextmanager
def quiet_pgpy() -> Iterator[None]:
    """Run pgpy calls without their expected warnings; any other warning is re-issued when the block ends."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if not _expected(warning):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno,
                                   registry=_REGISTRY)


def _expected(warning: warnings.WarningMessage) -> bool:
    if warning.category is UserWarning:
        return True
    moved = _MOVED.match(str(warning.message))
    return (issubclass(warning.category, CryptographyDeprecationWarning) and moved is not None
            and moved.group(1) in PGPY_DEPRECATIONS and "pgpy" in Path(warning.filename).parts)
