"""A real FTP/FTPS server (pyftpdlib) on 127.0.0.1, served from a thread (recipe in TESTING.md).

`FtpServer(folder, tls=...)` serves ``folder/root`` with explicit TLS
(``AUTH TLS`` required before login, ``PROT P`` required for data), implicit
TLS (TLS from the first byte) or plain FTP.  Users:

* ``alice`` / ``secret`` — may do everything;
* ``reader`` / ``secret`` — may only list and read (writes get a real ``550``);
* ``full`` / ``secret`` — every upload is answered ``552`` (quota exceeded);
* ``busy`` / ``secret`` — every upload is answered ``452`` (disk full for now);
* ``windows`` / ``secret`` — like IIS: no MLSD, and RNTO onto an existing file is refused;
* ``nolist`` / ``secret`` — may log in but not even list (``550``);
* ``localtime`` / ``secret`` — MDTM answers in local time (UTC+2), MLSD in UTC.

It can drop live sessions, stop, and start again on the same port.

Fixtures: ``ftp_server`` (explicit TLS), ``ftps_implicit_server``,
``ftp_plain_server`` (one each per session) and ``fresh_ftp_server`` (one per
test, for tests that drop sessions or restart it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from ferryman.connections import FtpConnection
from support import free_port, make_cert, unavailable, wait_for

try:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer
except ImportError:  # pragma: no cover - the test extra installs it
    FTPHandler = TLS_FTPHandler = FTPServer = DummyAuthorizer = IOLoop = None

USER, PASSWORD = "alice", "secret"
Mode = Literal["explicit", "implicit", False]


class _Behaviour:
    """What all test handlers share: the disk-full users, a short delay after a failed login."""

    username: str
    auth_failed_timeout = 0.1

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        if self.username == "full":
            self.respond("552 Requested file action aborted: exceeded storage allocation.")  # type: ignore[attr-defined]
            return None
        if self.username == "busy":
            self.respond("452 Insufficient storage space in system.")  # type: ignore[attr-defined]
            return None
        return super().ftp_STOR(file, mode)  # type: ignore[misc]

    def ftp_RNTO(self, path: str) -> Any:
        # Like IIS and FileZilla Server: renaming onto an existing file is refused.
        if self.username == "windows" and self.fs.lexists(path):  # type: ignore[attr-defined]
            self.respond("550 Cannot create a file when that file already exists.")  # type: ignore[attr-defined]
            self._rnfr = None
            return None
        return super().ftp_RNTO(path)  # type: ignore[misc]

    def ftp_MDTM(self, path: str) -> Any:
        # Like servers that answer MDTM in their local time (UTC+2 here) but MLSD in UTC.
        if self.username == "localtime":
            secs = self.fs.getmtime(path) + 7200  # type: ignore[attr-defined]
            self.respond("213 " + time.strftime("%Y%m%d%H%M%S", time.gmtime(secs)))  # type: ignore[attr-defined]
            return path
        return super().ftp_MDTM(path)  # type: ignore[misc]

    def ftp_MLSD(self, path: str) -> Any:
        # Like old servers: no MLSD, so clients must fall back to NLST.
        if self.username == "windows":
            self.respond("500 Command \"MLSD\" not understood.")  # type: ignore[attr-defined]
            return None
        return super().ftp_MLSD(path)  # type: ignore[misc]


def _handler(mode: Mode, authorizer: Any, cert: Path, key: Path) -> type:
    if mode is False:
        return type("PlainHandler", (_Behaviour, FTPHandler), {"authorizer": authorizer})
    attrs = {"authorizer": authorizer, "certfile": str(cert), "keyfile": str(key),
             "tls_control_required": True, "tls_data_required": True, "ssl_context": None}
    if mode == "explicit":
        return type("ExplicitTlsHandler", (_Behaviour, TLS_FTPHandler), attrs)

    def handle(self: Any) -> None:
        # Implicit TLS: secure the connection before the greeting.
        self.secure_connection(self.ssl_context)
        TLS_FTPHandler.handle(self)

    return type("ImplicitTlsHandler", (_Behaviour, TLS_FTPHandler), {**attrs, "handle": handle})


class FtpServer:
    """One pyftpdlib server in a daemon thread; call `start()` (the fixtures do)."""

    def __init__(self, folder: Path, tls: Mode = "explicit") -> None:
        if FTPServer is None:
            unavailable("pyftpdlib is not installed (pip install -e '.[test]')")
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        self.tls = tls
        self.root = folder / "root"
        self.root.mkdir(exist_ok=True)
        self.cert, key = make_cert(folder)
        authorizer = DummyAuthorizer()
        authorizer.add_user(USER, PASSWORD, str(self.root), perm="elradfmwMT")
        authorizer.add_user("reader", PASSWORD, str(self.root), perm="elr")
        authorizer.add_user("full", PASSWORD, str(self.root), perm="elradfmwMT")
        authorizer.add_user("busy", PASSWORD, str(self.root), perm="elradfmwMT")
        authorizer.add_user("windows", PASSWORD, str(self.root), perm="elradfmwMT")
        authorizer.add_user("nolist", PASSWORD, str(self.root), perm="e")
        authorizer.add_user("localtime", PASSWORD, str(self.root), perm="elradfmwMT")
        self.handler = _handler(tls, authorizer, self.cert, key)
        self.port = free_port()
        self.server: Any = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        # Each server gets its own IOLoop: the default one is a process-wide singleton.
        self.server = FTPServer(("127.0.0.1", self.port), self.handler, ioloop=IOLoop())
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"timeout": 0.05, "handle_exit": False},
            name=f"ftp-server-{self.port}", daemon=True,
        )
        self.thread.start()

    def drop_sessions(self) -> None:
        """Close every client connection (control and data) from the server side; keep listening."""
        done = threading.Event()

        def drop() -> None:
            for handler in list(self.server.ioloop.socket_map.values()):
                if handler is not self.server:
                    handler.close()
            done.set()

        self.server.ioloop.call_later(0, drop)
        done.wait(5)

    def stop(self) -> None:
        """Stop listening and close every connection; `start()` brings it back on the same port."""
        if self.server is None:
            return
        done = threading.Event()

        def close() -> None:
            self.server.close_all()
            done.set()

        self.server.ioloop.call_later(0, close)
        done.wait(5)
        assert self.thread is not None
        self.thread.join(5)
        self.server = None

    def restart(self) -> None:
        self.stop()
        wait_for(self._port_free, timeout=5)
        self.start()

    def _port_free(self) -> bool:
        import socket

        with socket.socket() as s:
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", self.port))
            except OSError:
                return False
        return True

    def connection(self, **overrides: Any) -> FtpConnection:
        """An `FtpConnection` for user alice that trusts the server's certificate."""
        values: dict[str, Any] = {
            "type": "ftp", "host": "127.0.0.1", "port": self.port, "user": USER,
            "password": PASSWORD, "tls": self.tls, "ca_file": str(self.cert), "timeout": 10,
        }
        values.update(overrides)
        return FtpConnection.model_validate(values)


def _serve(factory: pytest.TempPathFactory, tls: Mode) -> Iterator[FtpServer]:
    server = FtpServer(factory.mktemp("ftp"), tls)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    """FTPS with explicit TLS (AUTH TLS), for the whole session."""
    yield from _serve(tmp_path_factory, "explicit")


@pytest.fixture(scope="session")
def ftps_implicit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    """FTPS with implicit TLS, for the whole session."""
    yield from _serve(tmp_path_factory, "implicit")


@pytest.fixture(scope="session")
def ftp_plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    """Plain FTP, for the whole session."""
    yield from _serve(tmp_path_factory, False)


@pytest.fixture
def fresh_ftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    """An explicit-TLS server of its own, for a test that drops sessions or restarts it."""
    yield from _serve(tmp_path_factory, "explicit")
