"""Great Expectations says nothing in our logs while it is imported (it used to add ~20 info lines to every run)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_gx_runner_logs_nothing_from_great_expectations_at_info():
    # A fresh interpreter: GX is imported once per process, and this one may have imported it already.
    code = ("import logging, sys; logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, "
            "format='%(name)s %(levelname)s %(message)s'); import transfers.quality.gxrun")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    lines = [line for line in done.stderr.splitlines() if line.startswith("great_expectations")]
    assert lines == []
