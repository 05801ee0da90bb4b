"""A real Dovecot IMAP server on 127.0.0.1 (recipe in TESTING.md).

`Dovecot` writes a config in a fresh ``mkdtemp`` folder (mode 0755, so the
mail user 65534 can traverse it), users with passwords, a STARTTLS listener
(``port``) and an IMAPS listener (``tls_port``), and an ``Archive`` mailbox
created on first login.  XOAUTH2 logins are checked by Dovecot's ``oauth2``
passdb against a tiny introspection endpoint served by the fixture
(`Dovecot.tokens` holds the valid tokens).  Tests add mails with `append`
(a real IMAP APPEND) or write Maildir files directly with `write_maildir`
(for huge mailboxes), drop live sessions with `drop_sessions`, and
`stop`/`start` the server.  Processes are stopped by their own pids.

Fixtures: ``dovecot`` (one per session: use a fresh user per test with
`new_user`) and ``fresh_dovecot`` (one per test that stops or restarts it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from imapclient import IMAPClient

from ferryman.connections import ImapConnection
from support import descendants, free_port, make_cert, require_binary, wait_for

DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 65534
PASSWORD = "secret"


class _Introspection(BaseHTTPRequestHandler):
    """Answers Dovecot's OAuth2 token introspection (RFC 7662, POST token=…)."""

    server: _IntrospectionServer
    protocol_version = "HTTP/1.1"  # keep-alive, as Dovecot's HTTP client expects

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        token = (form.get("token") or [""])[0]
        user = self.server.tokens.get(token)
        body = json.dumps({"active": True, "username": user} if user else {"active": False}).encode()
        self.send_response(200)  # RFC 7662: an inactive token is still a 200 answer
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _IntrospectionServer(ThreadingHTTPServer):
    daemon_threads = True
    tokens: dict[str, str]


class Dovecot:
    """One Dovecot in a fresh folder; call `start()` (the fixtures do)."""

    def __init__(self, capability: str | None = None) -> None:
        """`capability` replaces the CAPABILITY list announced after login (to hide MOVE or UIDPLUS)."""
        require_binary(DOVECOT)
        self.folder = Path(tempfile.mkdtemp(prefix="ferryman-dovecot-"))
        os.chmod(self.folder, 0o755)
        self.cert, self.key = make_cert(self.folder)
        os.chmod(self.key, 0o644)
        self.port = free_port()
        self.tls_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.users: list[str] = []
        self.tokens: dict[str, str] = {}
        """Valid XOAUTH2 access tokens → user name (checked by the introspection endpoint)."""
        self._oauth = _IntrospectionServer(("127.0.0.1", 0), _Introspection)
        self._oauth.tokens = self.tokens
        self._oauth_thread = threading.Thread(target=self._oauth.serve_forever, kwargs={"poll_interval": 0.1},
                                              name="dovecot-oauth2", daemon=True)
        self._oauth_thread.start()
        for sub in ("run", "state", "home", "users"):
            (self.folder / sub).mkdir()
        self.new_user("alice")
        d = self.folder
        (d / "oauth2.conf.ext").write_text(f"""\
introspection_mode = post
introspection_url = http://127.0.0.1:{self._oauth.server_address[1]}/introspect
username_attribute = username
active_attribute = active
active_value = true
""")
        self.config = d / "dovecot.conf"
        self.config.write_text(f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
ssl = yes
ssl_cert = <{self.cert}
ssl_key = <{self.key}
disable_plaintext_auth = no
# Tests fail logins on purpose: no growing per-IP penalty, no delay.
login_trusted_networks = 127.0.0.0/8
auth_failure_delay = 0
auth_mechanisms = plain login xoauth2 oauthbearer
mail_location = maildir:~/Maildir
{f"imap_capability = {capability}" if capability else ""}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {d}/users/%u
}}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {d}/oauth2.conf.ext
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Archive {{
    auto = create
    special_use = \\Archive
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
""")

    # ---- users and mail ------------------------------------------------------------------

    def new_user(self, name: str | None = None) -> str:
        """Add a user (password `PASSWORD`) with an empty Maildir; returns the name."""
        name = name or f"u{uuid.uuid4().hex[:10]}"
        home = self.folder / "home" / name
        (home / "Maildir").mkdir(parents=True)
        for path in (home, home / "Maildir"):
            os.chown(path, MAIL_UID, MAIL_UID)
        # One passwd-file per user: Dovecot caches a file by its mtime (whole seconds), so users
        # appended to one shared file within a second would stay unknown.
        (self.folder / "users" / name).write_text(f"{name}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        self.users.append(name)
        return name

    def client(self, user: str = "alice") -> IMAPClient:
        """A logged-in IMAPS client for a test's own look at the mailbox."""
        context = ssl.create_default_context(cafile=str(self.cert))
        client = IMAPClient("127.0.0.1", port=self.tls_port, ssl=True, ssl_context=context, timeout=10)
        client.login(user, PASSWORD)
        return client

    def append(self, user: str, message: EmailMessage | bytes, mailbox: str = "INBOX") -> int:
        """APPEND a mail; returns its UID."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with self.client(user) as client:
            answer = client.append(mailbox, raw)
            # Dovecot answers [APPENDUID validity uid] (UIDPLUS).
            text = answer.decode() if isinstance(answer, bytes) else str(answer)
            return int(text.split("APPENDUID", 1)[1].split()[1].rstrip("]"))

    def uids(self, user: str, mailbox: str = "INBOX") -> list[int]:
        with self.client(user) as client:
            client.select_folder(mailbox, readonly=True)
            return sorted(client.search("ALL"))

    def flags(self, user: str, uid: int, mailbox: str = "INBOX") -> set[bytes]:
        with self.client(user) as client:
            client.select_folder(mailbox, readonly=True)
            return set(client.get_flags([uid]).get(uid, ())) - {b"\\Recent"}

    def write_maildir(self, user: str, messages: Iterator[bytes] | list[bytes]) -> int:
        """Write mails straight into the user's INBOX Maildir (Dovecot indexes them on access)."""
        new = self.folder / "home" / user / "Maildir" / "new"
        for sub in ("new", "cur", "tmp"):
            (new.parent / sub).mkdir(exist_ok=True)
            os.chown(new.parent / sub, MAIL_UID, MAIL_UID)
        count = 0
        stamp = int(time.time())
        for raw in messages:
            path = new / f"{stamp}.M{count}P{os.getpid()}.localhost"
            path.write_bytes(raw)
            os.chown(path, MAIL_UID, MAIL_UID)
            count += 1
        return count

    def connection(self, user: str = "alice", **overrides: Any) -> ImapConnection:
        """An `ImapConnection` over IMAPS that trusts the fixture's certificate."""
        values: dict[str, Any] = {
            "type": "imap", "host": "127.0.0.1", "port": self.tls_port, "user": user,
            "password": PASSWORD, "ca_file": str(self.cert), "timeout": 10,
        }
        values.update(overrides)
        return ImapConnection.model_validate({k: v for k, v in values.items() if v is not None})

    # ---- process ---------------------------------------------------------------------------

    def start(self) -> None:
        log = open(self.folder / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)], stdout=log, stderr=log)
        wait_for(self._listening, timeout=10)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            text = (self.folder / "dovecot.log").read_text(errors="replace") if (
                self.folder / "dovecot.log").exists() else ""
            raise AssertionError(f"dovecot exited with {self.process.returncode}:\n{text}")
        try:
            with socket.create_connection(("127.0.0.1", self.tls_port), timeout=1):
                return True
        except OSError:
            return False

    def drop_sessions(self) -> None:
        """Kill every logged-in IMAP session (clients see the connection drop); keep listening."""
        for pid in descendants(self.process.pid if self.process else -1):
            if _comm(pid) in ("imap", "imap-login"):  # imap-login proxies the TLS connection
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server and every session it forked (live clients see their connection drop)."""
        if self.process is None:
            return
        children = descendants(self.process.pid)
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        for pid in children:  # sessions outlive the master otherwise
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._oauth.shutdown()
        self._oauth.server_close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def mail(subject: str = "Export", *, export_id: int | None = None, body: str | None = None,
         sender: str = "ITRP <noreply@itrp.com>", to: str = "alice@example.com",
         attachments: list[tuple[str, bytes]] = (), headers: dict[str, str] | None = None,  # type: ignore[assignment]
         ) -> EmailMessage:
    """A mail like ITRP's scheduled-export mails (header X-ITRP-ExportID, a link in the text)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@itrp.test>"
    if export_id is not None:
        message["X-ITRP-ExportID"] = str(export_id)
        message["X-ITRP-Export"] = uuid.uuid4().hex
    for name, value in (headers or {}).items():
        message[name] = value
    if body is not None:
        message.set_content(body)
    for filename, data in attachments:
        message.add_attachment(data, maintype="application", subtype="octet-stream", filename=filename)
    return message


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot for the session (do not stop it; use `fresh_dovecot` for that)."""
    server = Dovecot()
    server.start()
    yield server
    server.close()


@pytest.fixture
def fresh_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of its own for a test that drops sessions, stops or restarts it."""
    server = Dovecot()
    server.start()
    yield server
    server.close()
