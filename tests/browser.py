"""Open a report in real headless Chromium and catch every request it makes off the machine.

Reports for data owners and IG officers hold personal data and are opened on
office machines: a stylesheet, font or script fetched from the internet would
leak that a report was opened, and what it is. So tests load each report from
a file in Debian's ``chromium`` with its proxy pointed at a recording server
here: any http(s) request the page makes, to any host, arrives there and is
listed; none reaches the network.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")

# Chromium's own component-updater and sign-in pings, which no switch in Debian's
# build turns off. Exact hosts only: fonts.googleapis.com and every other host a
# report could pull an asset from are still caught (see tests/integration/test_browser.py).
BROWSER_OWN_HOSTS = frozenset({"update.googleapis.com", "accounts.google.com", "clients2.google.com"})

#: Headless, and none of Chromium's own background traffic: whatever reaches the proxy came from the page.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-breakpad",
    "--disable-client-side-phishing-detection",
    "--disable-component-extensions-with-background-pages",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-pings",
    "--metrics-recording-only",
    "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter,Translate,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    "--no-first-run",
    "--no-default-browser-check",
)


def _host(request_line: str) -> str:
    """``GET http://h:80/x HTTP/1.1`` or ``CONNECT h:443 HTTP/1.1`` -> ``h``."""
    parts = request_line.split()
    target = parts[1] if len(parts) > 1 else ""
    if "://" in target:
        target = target.split("://", 1)[1]
    return target.split("/", 1)[0].rsplit(":", 1)[0]


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Rendered:
    """What Chromium made of a page: the DOM after scripts ran, and every outside request."""

    dom: str
    requests: list[str] = field(default_factory=list)


class _RecordingProxy:
    """A proxy that answers every request with 403 and remembers its first line."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def flags(self, *direct: str) -> list[str]:
        """Chromium's switches to send every request through this proxy, loopback too, except to ``direct``
        (``host:port`` entries, such as the server under test)."""
        return [f"--proxy-server=http://127.0.0.1:{self.port}",
                "--proxy-bypass-list=" + ";".join(["<-loopback>", *direct])]  # <-loopback>: loopback is proxied too

    def outside(self) -> list[str]:
        """The requests that reached the proxy, less Chromium's own pings (``BROWSER_OWN_HOSTS``)."""
        return [r for r in self.requests if _host(r) not in BROWSER_OWN_HOSTS]

    def __enter__(self) -> _RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    head = conn.recv(4096).decode("latin-1")
                except OSError:
                    head = ""
                if head:
                    self.requests.append(head.splitlines()[0])
                try:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass


def render_offline(html: Path, *, timeout: float = 60) -> Rendered:
    """Load ``html`` from disk in headless Chromium; return its DOM and any outside requests.

    Raises:
        FileNotFoundError: when no Chromium is installed.
        RuntimeError: when Chromium fails to render (its stderr is included).
    """
    browser = chromium_path()
    if browser is None:
        raise FileNotFoundError("chromium is not installed (Debian: apt-get install chromium)")
    with _RecordingProxy() as proxy, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        command = [
            browser,
            *CHROMIUM_FLAGS,
            *proxy.flags(),
            f"--user-data-dir={profile}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            Path(html).resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0 or not result.stdout.strip():
            raise RuntimeError(f"chromium could not render {html}: {result.stderr[-2000:]}")
        return Rendered(dom=result.stdout, requests=proxy.outside())
