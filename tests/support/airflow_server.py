"""A real ``airflow api-server`` for tests: its own AIRFLOW_HOME, a migrated SQLite metadata database,
SimpleAuthManager with named users and a passwords file, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ApiServer:
    url: str  # http://127.0.0.1:<port>
    host_port: str  # 127.0.0.1:<port>
    passwords: dict[str, str] = field(repr=False)
    log: Path

    def token(self, user: str) -> str:
        """A JWT for ``user`` from the auth manager's own ``POST /auth/token``."""
        body = json.dumps({"username": user, "password": self.passwords[user]}).encode()
        request = urllib.request.Request(
            f"{self.url}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def get(self, path: str, *, token: str | None = None, data: bytes | None = None) -> tuple[int, str]:
        """(status, body) of one request, without following redirects' targets off the server."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if data is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        request = urllib.request.Request(
            f"{self.url}{path}", data=data, headers=headers, method="POST" if data is not None else "GET"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8", "replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(home: Path, users: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of an Airflow under ``home``: none of the caller's AIRFLOW_/TRANSFERS_ variables leak in."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "TRANSFERS_"))}
    return {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{role}" for u, role in users.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        **extra,
    }


@contextmanager
def api_server(home: Path, users: Mapping[str, str], extra: Mapping[str, str]) -> Iterator[ApiServer]:
    """Migrate a metadata database under ``home`` and run ``airflow api-server`` there until the block ends.

    ``users``: user name -> SimpleAuthManager role; each gets a random password (``ApiServer.passwords``).
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "dags").mkdir(exist_ok=True)
    passwords = {user: secrets.token_urlsafe(12) for user in users}
    (home / "passwords.json").write_text(json.dumps(passwords))
    env = airflow_env(home, users, extra)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    port = _free_port()
    log = home / "api-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "airflow",
                "api-server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", passwords, log)
    try:
        _wait_up(server, process)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """The server and any worker it forked: the process group it was started in, for it alone."""
    for signal_number, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal_number)
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_up(server: ApiServer, process: subprocess.Popen) -> None:
    """Until the server answers its health check (it takes a while to start); fails if it exits meanwhile."""
    for _ in range(1200):
        if process.poll() is not None:
            raise RuntimeError(
                f"airflow api-server exited ({process.returncode}): {server.log.read_text(errors='replace')[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.url}/api/v2/monitor/health", timeout=2):
                return
        except (urllib.error.HTTPError, urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"airflow api-server did not answer in time: {server.log.read_text(errors='replace')[-3000:]}")
