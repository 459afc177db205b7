"""A TCP proxy on 127.0.0.1 that can stop forwarding: a partner's server that stalls.

Nothing is mocked: the proxy sits in front of the real ``sshd`` and passes its
bytes through unchanged until told to stall; from then on it reads nothing and
sends nothing, keeping both connections open, as a hung server or a dead link
that never resets does. With no upstream it accepts TCP and never says a word
(a server that never sends its SSH banner).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class StallingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` until ``stall()``; then holds everything.

    Args:
        upstream: ``(host, port)`` of the real server, or ``None`` to accept and stay silent.
    """

    def __init__(self, upstream: tuple[str, int] | None) -> None:
        self.upstream = upstream
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._budget: int | None = None  # client bytes still forwarded before stalling
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.host, self.port = self._listener.getsockname()
        threading.Thread(target=self._accept, daemon=True, name="stalling-proxy").start()

    def stall(self) -> None:
        """From now on forward nothing in either direction (connections stay open)."""
        self.stalled.set()

    def stall_after(self, upstream_bytes: int) -> None:
        """Forward ``upstream_bytes`` more from the client (e.g. part of an upload), then stall."""
        self._budget = upstream_bytes

    def close(self) -> None:
        self.closed.set()
        with self._lock:
            sockets, self._sockets = [self._listener, *self._sockets], []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def __enter__(self) -> StallingProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _keep(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _addr = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            if self.upstream is None:
                continue  # accepted, never answered
            server = socket.create_connection(self.upstream, timeout=10)
            server.settimeout(None)
            self._keep(server)
            for src, dst, counted in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, counted), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, counted: bool) -> None:
        while not self.stalled.is_set():
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if counted and self._budget is not None:
                self._budget -= len(data)
                if self._budget <= 0:
                    self.stall()
            if self.stalled.is_set():
                break  # read just as the stall began: dropped, like everything after it
            try:
                dst.sendall(data)
            except OSError:
                return
        self.closed.wait()  # hold both ends open, reading nothing: the peer's writes back up


def finishes_within(seconds: float, fn: Callable[[], Any]) -> BaseException | Any:
    """Run ``fn`` in a thread; return its result or the exception it raised.

    Fails the test (instead of hanging the suite) when ``fn`` is still running after ``seconds``.
    """
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed back to the test to assert on
            outcome.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise AssertionError(f"still waiting after {seconds:g}s: a stalled server hung the call")
    assert outcome, f"finished in {time.monotonic() - started:.1f}s without a result"
    return outcome[0]
