"""Sending mail through an ``smtp`` connection, shared by the ``email`` step and notifier.

`SmtpSender` opens a connection per `send` (STARTTLS, implicit TLS or plain),
logs in when a user is set, and maps smtplib's exceptions in one place
(`smtp_errors`): a refused login or a 5xx answer is a `PermanentError`, a 4xx
answer, a dropped or refused connection or a timeout is a `TransientError`.
Messages never hold the password.

`parse_address` is the one gate every address passes before it reaches a
header or the envelope: one address per value, no line breaks.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage

from ferryman.connections import SmtpConnection
from ferryman.errors import PermanentError, TransientError, UnsafeInput, unresolved
from ferryman.secrets import mask
from ferryman.tls import client_context


def parse_address(value: str, field: str = "address") -> Address:
    """Exactly one mail address from `value` (``jane@example.com`` or ``Jane <jane@example.com>``).

    Raises `UnsafeInput` for line breaks or several addresses in one value
    (header injection), `PermanentError` for something that is no address.
    """
    if any(c in value for c in "\r\n\x00"):
        raise UnsafeInput(f"{field}: {value!r} holds a line break; refused (header injection)")
    try:
        header = policy.default.header_factory("To", value)
        addresses = list(header.addresses)
    except (ValueError, IndexError, TypeError) as exc:
        raise PermanentError(f"{field}: {value!r} is not a mail address ({exc})") from None
    if len(addresses) > 1 or ";" in value:
        raise UnsafeInput(f"{field}: {value!r} holds several addresses; give one per entry")
    if not addresses or not addresses[0].username or not addresses[0].domain or header.defects:
        raise PermanentError(f"{field}: {value!r} is not a mail address")
    address: Address = addresses[0]
    if any(c.isspace() or c in "<>,;\"" for c in address.addr_spec) or "." not in address.domain:
        raise PermanentError(f"{field}: {value!r} is not a mail address")
    return address


def tls_context(conn: SmtpConnection) -> ssl.SSLContext:
    """The TLS context for `conn`: `ca_file` trusted when set; `verify = false` turns checks off."""
    return client_context(conn.ca_file, conn.verify)


@contextmanager
def smtp_errors(action: str, conn: SmtpConnection, secrets: Sequence[str] = ()) -> Iterator[None]:
    """Map smtplib / socket / ssl exceptions to `TransientError` or `PermanentError`."""
    where = f"{conn.host}:{port_of(conn)}"

    def text(value: object) -> str:
        raw = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
        return mask(" ".join(raw.split()), list(secrets))

    try:
        yield
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(
            f"smtp {where}: login as {conn.user!r} refused: {exc.smtp_code} {text(exc.smtp_error)}"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        refused = ", ".join(f"{rcpt} ({code} {text(msg)})" for rcpt, (code, msg) in exc.recipients.items())
        error = TransientError if all(400 <= code < 500 for code, _ in exc.recipients.values()) else PermanentError
        raise error(f"smtp {where}: {action}: recipients refused: {refused}") from None
    except smtplib.SMTPResponseException as exc:
        error = TransientError if 400 <= exc.smtp_code < 500 else PermanentError
        raise error(f"smtp {where}: {action}: {exc.smtp_code} {text(exc.smtp_error)}") from None
    except smtplib.SMTPNotSupportedError as exc:
        raise PermanentError(f"smtp {where}: {action}: {text(exc)}") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise TransientError(f"smtp {where}: {action}: connection closed ({text(exc) or 'no reason'})") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(
            f"smtp {where}: TLS certificate not trusted ({exc.verify_message}); set ca_file for a private CA"
        ) from None
    except ssl.SSLError as exc:
        raise PermanentError(
            f"smtp {where}: TLS failed ({exc.reason or exc}); check tls = {conn.tls!r} and the port"
        ) from None
    except socket.gaierror as exc:
        raise TransientError(f"smtp {where}: {unresolved(conn.host, exc)}") from None
    except TimeoutError:
        raise TransientError(f"smtp {where}: {action}: timed out after {conn.timeout:g}s") from None
    except (smtplib.SMTPException, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else text(exc)
        raise TransientError(f"smtp {where}: {action}: {reason}") from None


def port_of(conn: SmtpConnection) -> int:
    """The configured port, else 465 for implicit TLS, 587 for STARTTLS, 25 for plain."""
    if conn.port:
        return conn.port
    return {"implicit": 465, "starttls": 587}.get(str(conn.tls), 25)


class SmtpSender:
    """Sends messages through one ``smtp`` connection (a new SMTP session per `send`)."""

    def __init__(self, conn: SmtpConnection) -> None:
        self.conn = conn

    @contextmanager
    def session(self) -> Iterator[smtplib.SMTP]:
        """A connected, logged-in SMTP session, closed afterwards."""
        conn = self.conn
        password = conn.password.reveal() if conn.password else None
        secrets = [password] if password else []
        with smtp_errors("connect", conn, secrets):
            client: smtplib.SMTP
            if conn.tls == "implicit":
                client = smtplib.SMTP_SSL(conn.host, port_of(conn), timeout=conn.timeout,
                                          context=tls_context(conn))
            else:
                client = smtplib.SMTP(conn.host, port_of(conn), timeout=conn.timeout)
        try:
            with smtp_errors("log in", conn, secrets):
                if conn.tls == "starttls":
                    client.starttls(context=tls_context(conn))
                if conn.user:
                    client.login(conn.user, password or "")
            with smtp_errors("send", conn, secrets):
                yield client
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> dict[str, str]:
        """Send `message` to the envelope `recipients`; returns those refused (when others got it)."""
        sender = parse_address(str(message["From"]), "from").addr_spec
        with self.session() as client:
            refused = client.send_message(message, from_addr=sender, to_addrs=list(recipients))
        return {rcpt: f"{code} {msg.decode(errors='replace')}" for rcpt, (code, msg) in refused.items()}

    def probe(self) -> str:
        """Log in and say NOOP (for ``check --connect``)."""
        with self.session() as client:
            code, _ = client.noop()
        how = {"starttls": "STARTTLS", "implicit": "implicit TLS"}.get(str(self.conn.tls), "no TLS")
        who = f"logged in as {self.conn.user}" if self.conn.user else "connected (no login)"
        return f"{who} ({how}); NOOP answered {code}"
