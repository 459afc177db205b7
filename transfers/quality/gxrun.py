"""GX plumbing: one in-memory context per process, analytics off, results read for counts only."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

# Set before the import: no usage statistics may leave this machine, whatever
# the environment says (GX 1.x reads the variable when a context is built).
os.environ["GX_ANALYTICS_ENABLED"] = "false"
# Also before the import, whose own ~20 info lines ("Skipping registering function ...", "Multiple
# declarations of metric ...") otherwise fill every run and task log. After it: GX logs exceptions
# raised inside expectations, and an exception text can quote a cell; our results already say which
# check could not be evaluated.
logging.getLogger("great_expectations").setLevel(logging.CRITICAL)

import great_expectations as gx  # noqa: E402
from great_expectations.data_context.types.base import (  # noqa: E402
    DataContextConfig,
    InMemoryStoreBackendDefaults,
    ProgressBarsConfig,
)
from great_expectations.execution_engine import pandas_execution_engine  # noqa: E402

# GX fingerprints every in-memory batch under 1 GB (an md5 over a hash of every
# cell, after factorising each text column) for the result's batch_markers,
# which we never read: it was a third of GX's time per batch. Nothing checked
# depends on it.
pandas_execution_engine.HASH_THRESHOLD = 0


# Counts and row numbers only. ``exclude_unexpected_values`` and a zero
# ``partial_unexpected_count`` keep the failing values out of the result;
# COMPLETE is needed for ``unexpected_index_list`` (positions, since every
# batch is validated with a fresh 0..n-1 index), which quarantine maps to keys.
_RESULT_FORMAT: dict[str, Any] = {
    "result_format": "COMPLETE",
    "exclude_unexpected_values": True,
    "partial_unexpected_count": 0,
    "include_unexpected_rows": False,
    "return_unexpected_index_query": False,
}


_gx_lock = threading.Lock()
_gx_batches: Any = None


def _batch_definition() -> Any:
    """One in-memory GX context per process: no project files, no Data Docs, no progress bars."""
    global _gx_batches
    with _gx_lock:
        if _gx_batches is None:
            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            asset = context.data_sources.add_pandas("transfers").add_dataframe_asset("batch")
            _gx_batches = asset.add_batch_definition_whole_dataframe("whole")
        return _gx_batches


def _raised(info: Any) -> bool:
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())
