"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it is sent, for the alert tests."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage


@dataclass
class Captured:
    """One message as the server received it: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        """Every text part, decoded (the notifier sends HTML)."""
        parts = [p.get_content() for p in self.message.walk() if p.get_content_maintype() == "text"]
        return "\n".join(parts)


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Captured] = field(default_factory=list)

    def conn_json(self) -> str:
        """The server as ``AIRFLOW_CONN_<ID>`` (JSON): plain SMTP, no TLS, no login."""
        return json.dumps({"conn_type": "smtp", "host": self.host, "port": self.port,
                           "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0}})


class _Keep:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.server.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server on a free port of 127.0.0.1 for the block's duration; ``messages`` fills as mail arrives."""
    from aiosmtpd.controller import Controller

    server = SmtpServer("127.0.0.1", _free_port())
    controller = Controller(_Keep(server), hostname=server.host, port=server.port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
