"""aiosmtpd, a real SMTP server in-process on 127.0.0.1 (TESTING.md): STARTTLS + AUTH, or implicit TLS.

`SmtpServer.messages` holds every accepted message (envelope and parsed
mail); `refuse_rcpt` / `refuse_data` / `refuse_mail` make the server answer
with a 4xx or 5xx.  The servers are session-scoped; the `smtp` and `smtps`
fixtures reset the recorded messages and refusals for each test.
"""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from ferryman.connections import SmtpConnection
from support import free_port, make_cert

USER = "mailer"
PASSWORD = "s3cret-Smtp-pw"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class SmtpServer:
    port: int
    cert: Path
    tls: str
    messages: list[Received] = field(default_factory=list)
    refuse_rcpt: dict[str, str] = field(default_factory=dict)
    """Recipient → answer, e.g. ``"550 5.1.1 no such user"`` or ``"450 4.2.1 try later"``."""
    refuse_data: str | None = None
    refuse_mail: str | None = None
    logins: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.messages.clear()
        self.refuse_rcpt.clear()
        self.refuse_data = self.refuse_mail = None
        self.logins.clear()

    def connection(self, **changes: Any) -> SmtpConnection:
        raw: dict[str, Any] = {
            "type": "smtp", "host": "127.0.0.1", "port": self.port, "user": USER, "password": PASSWORD,
            "tls": self.tls, "ca_file": str(self.cert), "from": "exports@example.com", "timeout": "5s",
        }
        raw.update(changes)
        return SmtpConnection.model_validate(raw)

    # aiosmtpd handler hooks
    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.refuse_mail:
            return self.refuse_mail
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address in self.refuse_rcpt:
            return self.refuse_rcpt[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse_data:
            return self.refuse_data
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), parsed))  # type: ignore[arg-type]
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = (isinstance(auth_data, LoginPassword) and auth_data.login.decode() == USER
              and auth_data.password.decode() == PASSWORD)
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)


def _start(tmp: Path, tls: str) -> tuple[Any, SmtpServer]:
    from aiosmtpd.controller import Controller

    cert, key = make_cert(tmp)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), cert, tls)
    options: dict[str, Any] = {"authenticator": server.authenticate, "auth_require_tls": True}
    if tls == "implicit":
        # aiosmtpd does not count implicit TLS as TLS for auth_require_tls; the socket is TLS anyway.
        options.update(ssl_context=context, auth_require_tls=False)
    else:
        options.update(tls_context=context, require_starttls=True)
    controller = Controller(server, hostname="127.0.0.1", port=server.port, **options)
    controller.start()
    return controller, server


@pytest.fixture(scope="session")
def _smtp_starttls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    controller, server = _start(tmp_path_factory.mktemp("smtp"), "starttls")
    yield server
    controller.stop()


@pytest.fixture(scope="session")
def _smtp_implicit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    controller, server = _start(tmp_path_factory.mktemp("smtps"), "implicit")
    yield server
    controller.stop()


@pytest.fixture
def smtp(_smtp_starttls: SmtpServer) -> SmtpServer:
    """The STARTTLS + AUTH server, with no messages recorded yet."""
    _smtp_starttls.reset()
    return _smtp_starttls


@pytest.fixture
def smtps(_smtp_implicit: SmtpServer) -> SmtpServer:
    """The implicit-TLS + AUTH server, with no messages recorded yet."""
    _smtp_implicit.reset()
    return _smtp_implicit
