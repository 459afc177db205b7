"""The gate every real-part fixture passes: skip without the part, fail with ``CI=true``.

Kept apart from ``tests/conftest.py`` so helpers that start real parts (``tests.support.sshd``) can be
imported by ``bench/`` scripts without importing the conftest.
"""

from __future__ import annotations

import os

import pytest


def require_part(name: str, available: bool, why: str = "") -> None:
    """Skip the test when a real part is missing; fail instead when ``CI=true``.

    Args:
        name: The part, e.g. ``"OpenSSH sshd"``.
        available: Whether it is there.
        why: What was missing or how to install it.
    """
    if available:
        return
    message = f"{name} is not available: {why}" if why else f"{name} is not available"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: real parts must run, not skip)", pytrace=False)
    pytest.skip(message)
