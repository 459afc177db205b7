"""Which published object names a reader's mirror may write: only the layout's report shapes, nothing that
could reach outside the flow's reports folder."""

from __future__ import annotations

import pytest

from transfers.workstore.mirror import _report_shape


@pytest.mark.parametrize("name", ["quality_A_2026-11-25.html", "rectification_A_2026-11-25.csv",
                                  "dry-run/quality_A_2026-11-25.json"])
def test_a_report_in_the_layouts_shape_is_mirrored(name):
    assert _report_shape(name.split("/"))


@pytest.mark.parametrize("name", ["../quality_A_2026-11-25.html", "other/quality_A_2026-11-25.html",
                                  "dry-run/x/quality_A_2026-11-25.html", ".quality_A_2026-11-25.html",
                                  "quality_A_notadate.html", "", "dry-run/", "quality_A_2026-11-25.html\\..",
                                  "quality_A_2026-11-25\n.html"])
def test_any_other_name_is_never_written(name):
    assert not _report_shape(name.split("/"))
