"""Drive real headless Chromium through Debian's ``chromedriver`` (W3C WebDriver over HTTP), offline.

For pages that need a person's steps (sign in, follow a link, fill a form) rather than one load
(``tests.browser.render_offline``). Every request the browser makes goes through the recording
proxy of ``tests.browser``, except to the ``host:port`` entries given as ``direct`` (the server
under test): ``Browser.outside()`` lists whatever else the pages asked for. The WebDriver protocol
is a handful of JSON calls, spoken here with the standard library, so no client package and no
browser download is needed (``chromium`` and ``chromium-driver`` are Debian packages).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tests.browser import CHROMIUM_FLAGS, _RecordingProxy, chromium_path

#: A signed-in browser's own traffic that no switch turns off: the check of a typed password against
#: leaked ones, and the preconnect to the default search engine (Debian's profile names one). Off, so
#: that whatever reaches the proxy came from a page.
QUIET_PREFS = {
    "credentials_enable_service": False,
    "profile.password_manager_enabled": False,
    "profile.password_manager_leak_detection": False,
    "net.network_prediction_options": 2,  # no prediction, no preconnect
    # Debian's profile preconnects to its default search engine at start: one on loopback instead (not a
    # ``direct`` host, so a request to it would still be recorded).
    "default_search_provider_data": {
        "template_url_data": {"keyword": "none", "short_name": "none", "url": "http://127.0.0.1:9/?q={searchTerms}"}
    },
}
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
T = TypeVar("T")


def chromedriver_path() -> str | None:
    return shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One WebDriver session: open pages, find elements, type, click, read the page."""

    def __init__(self, endpoint: str, session: str, proxy: _RecordingProxy) -> None:
        self._base = f"{endpoint}/session/{session}"
        self._proxy = proxy

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
        request = urllib.request.Request(
            f"{self._base}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"webdriver {method} {path}: {exc.read()[:500]!r}") from None

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    @property
    def url(self) -> str:
        return self._call("GET", "/url")

    @property
    def source(self) -> str:
        return self._call("GET", "/source")

    def find(self, css: str) -> str | None:
        """The first element matching ``css`` now, or None."""
        found = self._call("POST", "/elements", {"using": "css selector", "value": css})
        return found[0][ELEMENT] if found else None

    def type(self, css: str, text: str) -> None:
        self._call("POST", f"/element/{self.wait_for(css)}/value", {"text": text})

    def click(self, css: str) -> None:
        self._call("POST", f"/element/{self.wait_for(css)}/click")

    def wait_for(self, css: str, *, tries: int = 100) -> str:
        """The element matching ``css``, once the page has one (pages built by script take a moment)."""
        return self.until(lambda: self.find(css), f"no element {css!r} on {self.url}", tries=tries)

    def until(self, check: Callable[[], T | None], failure: str, *, tries: int = 100) -> T:
        """``check()`` once it returns something, looking every 0.1 s at most ``tries`` times."""
        for _ in range(tries):
            found = check()
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(failure)

    def screenshot(self, path: str) -> None:
        """A PNG of the window as it is now (for a person to look at what a test saw)."""
        import base64

        with open(path, "wb") as out:
            out.write(base64.b64decode(self._call("GET", "/screenshot")))

    def outside(self) -> list[str]:
        """Every request any page made to anything but the ``direct`` hosts (Chromium's own pings aside)."""
        return self._proxy.outside()


@contextmanager
def browser(*direct: str) -> Iterator[Browser]:
    """A headless Chromium under ``chromedriver``, its requests recorded except to ``direct`` (``host:port``).

    Raises:
        FileNotFoundError: chromium or chromedriver is not installed.
    """
    binary, driver = chromium_path(), chromedriver_path()
    if binary is None or driver is None:
        raise FileNotFoundError(
            "chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver)"
        )
    port = _free_port()
    with _RecordingProxy() as proxy, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = subprocess.Popen(
            [driver, f"--port={port}", "--allowed-ips=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        endpoint = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(endpoint, process)
            options = {
                "binary": binary,
                "prefs": QUIET_PREFS,
                "args": [*CHROMIUM_FLAGS, *proxy.flags(*direct), f"--user-data-dir={profile}"],
            }
            body = json.dumps(
                {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}}
            ).encode()
            request = urllib.request.Request(
                f"{endpoint}/session", data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=60) as response:
                session = json.loads(response.read())["value"]["sessionId"]
            session_browser = Browser(endpoint, session, proxy)
            try:
                yield session_browser
            finally:
                session_browser._call("DELETE", "")
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_ready(endpoint: str, process: subprocess.Popen) -> None:
    for _ in range(100):
        if process.poll() is not None:
            raise RuntimeError(f"chromedriver exited at start ({process.returncode})")
        try:
            with urllib.request.urlopen(f"{endpoint}/status", timeout=2) as response:
                if json.loads(response.read())["value"].get("ready"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("chromedriver did not become ready")
