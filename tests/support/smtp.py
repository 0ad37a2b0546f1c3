"""A real SMTP server (aiosmtpd) on loopback that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Iterator

from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802 - aiosmtpd hook
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages

    def html_of(self, msg: EmailMessage) -> str:
        part = msg.get_body(preferencelist=("html", "plain"))
        return part.get_content() if part else ""

    def airflow_conn_uri(self) -> str:
        """``AIRFLOW_CONN_SMTP_DEFAULT`` for the smtp provider: plain SMTP, no TLS, no login."""
        import json

        return json.dumps({"conn_type": "smtp", "host": self.host, "port": self.port,
                           "extra": {"disable_tls": True, "disable_ssl": True,
                                     "from_email": "STA <no-reply@sta.test>", "timeout": 10}})


@contextmanager
def smtp_server(host: str = "127.0.0.1") -> Iterator[Mailbox]:
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    box = Mailbox(host, port)
    controller = Controller(box, hostname=host, port=port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
