"""IMAP sessions for the `imap` source: TLS, password or XOAUTH2 login, and error mapping.

Every imapclient / imaplib / socket / TLS exception is mapped to ferryman's
errors in one place, `imap_errors`, with a one-line message that names the
server and never a secret.
"""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from ferryman.connections import ImapConnection
from ferryman.errors import FerrymanError, PermanentError, TransientError, describe, unresolved
from ferryman.secrets import Secret, mask
from ferryman.tls import client_context

# imapclient traces every protocol line at DEBUG (mail headers and bodies included):
# keep that out of `ferryman run -v` unless someone asks for it explicitly.
if logging.getLogger("imapclient").level == logging.NOTSET:
    logging.getLogger("imapclient").setLevel(logging.INFO)


class _TokenRefused(Exception):
    """The server refused an XOAUTH2 token (maybe expired)."""


class MailboxMissing(TransientError):
    """The watched mailbox (or the archive mailbox) does not exist on the server (yet)."""


@contextmanager
def imap_errors(where: str, secrets: list[str] | None = None, host: str | None = None) -> Iterator[None]:
    """Map library exceptions raised inside to `TransientError` / `PermanentError`; `host` names
    the server in a DNS failure."""
    try:
        yield
    except (FerrymanError, _TokenRefused):
        raise
    except LoginError as exc:
        raise PermanentError(f"{where}: login refused: {_text(exc, secrets)}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); "
                             "set ca_file to the CA that signed it") from None
    except socket.gaierror as exc:
        raise TransientError(f"{where}: {unresolved(host, exc) if host else describe(exc)}") from None
    except (imaplib.IMAP4.abort, ssl.SSLError, TimeoutError, OSError, EOFError) as exc:
        raise TransientError(f"{where}: connection failed: {_text(exc, secrets) or type(exc).__name__}") from None
    except (IMAPClientError, imaplib.IMAP4.error) as exc:
        text = _text(exc, secrets)
        if "nonexistent" in text.lower() or "doesn't exist" in text.lower() or "does not exist" in text.lower():
            raise MailboxMissing(f"{where}: {text}") from None
        raise TransientError(f"{where}: server said: {text}") from None


def _text(exc: BaseException, secrets: list[str] | None) -> str:
    raw = exc.args[0] if exc.args else str(exc)
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return mask(" ".join(text.split()), secrets or [])


def select_mailbox(client: IMAPClient, mailbox: str, where: str, readonly: bool) -> tuple[int, int]:
    """SELECT (or EXAMINE) `mailbox`: (UIDVALIDITY, UIDNEXT); a missing mailbox is `MailboxMissing`."""
    try:
        info = client.select_folder(mailbox, readonly=readonly)
    except imaplib.IMAP4.abort:
        raise  # the connection broke: imap_errors reports that
    except imaplib.IMAP4.error as exc:
        raise MailboxMissing(f"{where}: the mailbox does not exist or cannot be opened "
                             f"({' '.join(str(exc).split())}); will look again later") from None
    return int(info.get(b"UIDVALIDITY", 0)), int(info.get(b"UIDNEXT", 0))


def tls_context(conn: ImapConnection) -> ssl.SSLContext:
    """A client TLS context trusting `ca_file` (or the system CAs); `verify = false` turns checks off."""
    return client_context(conn.ca_file, conn.verify)


class ImapLogin:
    """Opens logged-in `IMAPClient`s for one connection (TLS mode, password or XOAUTH2)."""

    def __init__(self, name: str, conn: ImapConnection) -> None:
        self.name = name
        self.conn = conn
        self.where = f"imap {name} ({conn.user}@{conn.host})"
        self._secrets: list[str] = []

    @property
    def port(self) -> int:
        if self.conn.port:
            return self.conn.port
        return 993 if self.conn.tls == "implicit" else 143

    def open(self) -> IMAPClient:
        """A connected, logged-in client; raises `TransientError` / `PermanentError`."""
        oauth = self.conn.oauth2
        try:
            return self._open(fresh=False)
        except _TokenRefused:
            if oauth is None or oauth.token_command is None:
                raise PermanentError(f"{self.where}: XOAUTH2 login refused (the token is invalid or "
                                     "expired; use token_command to get fresh ones)") from None
        # The token may have expired: ask the command for a fresh one, once, on a new connection.
        try:
            return self._open(fresh=True)
        except _TokenRefused:
            raise PermanentError(f"{self.where}: XOAUTH2 login refused with a fresh token from "
                                 "token_command") from None

    def _open(self, fresh: bool) -> IMAPClient:
        conn = self.conn
        client: IMAPClient | None = None
        with imap_errors(self.where, self._secrets, conn.host):
            try:
                implicit = conn.tls == "implicit"
                context = tls_context(conn) if conn.tls else None
                client = IMAPClient(conn.host, port=self.port, ssl=implicit, ssl_context=context,
                                    timeout=conn.timeout)
                if conn.tls == "starttls":
                    client.starttls(context)
                self._login(client, fresh)
                return client
            except BaseException:
                close_quietly(client, broken=True)
                raise

    def _login(self, client: IMAPClient, fresh: bool) -> None:
        conn = self.conn
        if conn.oauth2 is not None:
            try:
                client.oauth2_login(conn.user, self._token(fresh))
            except LoginError:
                raise _TokenRefused() from None
            return
        if conn.password is None:
            raise PermanentError(f"{self.where}: no password and no oauth2 configured")
        password = conn.password.reveal()
        self._remember(password)
        client.login(conn.user, password)

    def _token(self, fresh: bool) -> str:
        oauth = self.conn.oauth2
        assert oauth is not None
        if oauth.token_command is not None:
            token = Secret("command", list(oauth.token_command)).reveal()
        elif oauth.token is not None:
            token = oauth.token.reveal()
        else:
            raise PermanentError(f"{self.where}: oauth2 needs token or token_command")
        if not token:
            raise PermanentError(f"{self.where}: the OAuth2 token is empty")
        self._remember(token)
        return token

    def _remember(self, secret: str) -> None:
        if secret not in self._secrets:
            self._secrets.append(secret)

    @property
    def secrets(self) -> list[str]:
        """Secrets revealed so far, to mask in messages."""
        return self._secrets


def close_quietly(client: IMAPClient | None, broken: bool = False) -> None:
    """Log out; when the connection is `broken`, just drop the socket (a LOGOUT would wait for the timeout)."""
    if client is None:
        return
    if not broken:
        try:
            client.logout()
            return
        except Exception:
            pass
    with suppress(Exception):
        client.shutdown()


def probe_imap(name: str, conn: object) -> str:
    """``check --connect``: log in (TLS as configured, password or XOAUTH2) and look at INBOX."""
    assert isinstance(conn, ImapConnection)
    login = ImapLogin(name, conn)
    client = login.open()
    try:
        with imap_errors(login.where, login.secrets):
            folders = client.list_folders()
            status = client.folder_status("INBOX", [b"MESSAGES"])
            idle = "IDLE" if client.has_capability("IDLE") else "no IDLE (polling)"
    finally:
        close_quietly(client)
    security = {"implicit": "TLS", "starttls": "STARTTLS", False: "NO TLS"}[conn.tls]
    return (f"logged in as {conn.user} ({security}, {idle}); {len(folders)} mailboxes, "
            f"INBOX has {int(status.get(b'MESSAGES', 0))} mails")
