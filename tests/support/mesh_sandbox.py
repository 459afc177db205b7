"""NHS England's ``mesh-sandbox`` (a locally runnable MESH API) as a real part for tests.

mesh-sandbox 1.0.137 pins fastapi 0.150, which Airflow 3.3 cannot take (fastapi <0.137), so it never
joins the project's environment: the fixture builds it a venv of its own with ``uv`` (the only tool
.ci/run installs) and runs ``uvicorn mesh_sandbox.api:app`` on 127.0.0.1 with a free port.

Its canned mailboxes (``mesh_sandbox/store/data``): X26ABC1 sends workflow ``TEST_WORKFLOW`` to X26ABC2;
X26ABC2 sends ``TEST_WORKFLOW_ACK`` to X26ABC1. Every mailbox's password is ``password``. With
``AUTH_MODE=full`` the sandbox checks mesh-client's HMAC token against ``SHARED_KEY``; TLS is off (http).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.http_process import serving
from tests.support.sshd import free_port

SANDBOX_VERSION = "1.0.137"
SHARED_KEY = "TestKey"
PASSWORD = "password"
SENDER, RECIPIENT, WORKFLOW = "X26ABC1", "X26ABC2", "TEST_WORKFLOW"
RETURN_WORKFLOW = "TEST_WORKFLOW_ACK"  # X26ABC2 -> X26ABC1: for receipts sent back


@dataclass(frozen=True)
class MeshSandbox:
    """A running mesh-sandbox: its base URL and the way to reach one of its mailboxes."""

    url: str
    workdir: Path

    @property
    def log(self) -> str:
        return (self.workdir / "sandbox.log").read_text(errors="replace")

    def client(self, mailbox: str):  # mesh_client.MeshClient, imported lazily
        """A mesh-client session for ``mailbox`` (no retries: tests see each request)."""
        from mesh_client import MeshClient

        return MeshClient(self.url, mailbox, PASSWORD, shared_key=SHARED_KEY.encode(), max_retries=0)

    def drain(self, *mailboxes: str) -> None:
        """Acknowledge every message waiting in ``mailboxes``: tests sharing the session's sandbox start clean."""
        for mailbox in mailboxes:
            with self.client(mailbox) as client:
                for message_id in client.list_messages():
                    client.acknowledge_message(message_id)

    def connection_json(self, mailbox: str = SENDER) -> str:
        """An ``AIRFLOW_CONN_...`` value for ``mailbox`` in the shape ``transfers.delivery.mesh`` reads."""
        import json

        return json.dumps({"conn_type": "mesh", "host": self.url, "login": mailbox, "password": PASSWORD,
                           "extra": {"shared_key": SHARED_KEY}})


def uv_binary() -> str | None:
    return shutil.which("uv")


@contextmanager
def run_mesh_sandbox(workdir: Path, uv: str) -> Iterator[MeshSandbox]:
    """Build the sandbox's own venv under ``workdir`` and run it until the context ends.

    Raises:
        RuntimeError: the venv could not be made or the server did not answer in time (its log is in the message).
    """
    venv = workdir / "venv"
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True, capture_output=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), f"mesh-sandbox=={SANDBOX_VERSION}"],
                   check=True, capture_output=True, timeout=600)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "ENV": "local", "AUTH_MODE": "full", "STORE_MODE": "memory",
           "SHARED_KEY": SHARED_KEY}
    sandbox = MeshSandbox(f"http://127.0.0.1:{port}", workdir)
    with serving([str(python), "-m", "uvicorn", "mesh_sandbox.api:app", "--host", "127.0.0.1", "--port", str(port)],
                 f"{sandbox.url}/health", workdir / "sandbox.log", env=env, cwd=workdir, what="mesh-sandbox"):
        yield sandbox
