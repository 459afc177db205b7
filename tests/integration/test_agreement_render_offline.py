"""The rendered agreement opens in headless Chromium without any outside request."""

from __future__ import annotations

import pytest

from tests.browser import chromium_path, render_offline
from tests.conftest import require_part
from transfers.agreement import load_config
from transfers.agreement_doc import SECTIONS, render
from transfers.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def test_the_agreement_document_renders_offline_with_every_section(tmp_path):
    require_part("chromium", chromium_path() is not None, "apt-get install -y chromium")
    page = tmp_path / "mash-referrals.html"
    page.write_text(render(load_config(PROJECT_ROOT / "config"), "mash-referrals", "html"), encoding="utf-8")

    rendered = render_offline(page)

    assert rendered.requests == []
    for anchor, heading in SECTIONS:
        assert f'id="{anchor}"' in rendered.dom
        assert heading.upper() in rendered.dom.upper()
