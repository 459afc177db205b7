"""The offline-rendering check itself: it must see a page's outside requests, and only those."""

from __future__ import annotations

import pytest

from tests.browser import render_offline

pytestmark = pytest.mark.integration


def test_a_page_that_fetches_assets_is_caught(chromium, tmp_path):
    page = tmp_path / "leaky.html"
    page.write_text(
        '<html><head><link rel="stylesheet" href="https://fonts.googleapis.com/css?family=Roboto">'
        '<link rel="stylesheet" href="https://cdn.example.com/a.css"></head>'
        '<body><img src="http://tracker.example.invalid/p.gif"><img src="http://127.0.0.1:8765/local.png"></body></html>'
    )

    rendered = render_offline(page)

    hosts = " ".join(rendered.requests)
    for host in ("fonts.googleapis.com", "cdn.example.com", "tracker.example.invalid", "127.0.0.1:8765"):
        assert host in hosts


def test_a_self_contained_page_makes_no_request_and_its_scripts_run(chromium, tmp_path):
    page = tmp_path / "clean.html"
    page.write_text(
        "<html><head><style>h1{color:#123}</style></head><body><h1>Scorecard</h1>"
        "<script>document.body.insertAdjacentHTML('beforeend', '<p id=made-by-script>ok</p>')</script></body></html>"
    )

    rendered = render_offline(page)

    assert rendered.requests == []
    assert 'id="made-by-script"' in rendered.dom
