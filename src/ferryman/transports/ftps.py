"""FTPS plumbing for the FTP transport: TLS contexts and the two ways FTP speaks TLS.

`TlsFTP` is explicit TLS (``AUTH TLS`` on port 21) whose data connections
resume the control connection's TLS session; `ImplicitTlsFTP` speaks TLS
from the first byte (port 990).  `tls_context` applies ``ca_file`` and
``verify`` from the connection.
"""

from __future__ import annotations

import ftplib
import socket
import ssl

from ferryman.connections import FtpConnection
from ferryman.tls import client_context


class TlsFTP(ftplib.FTP_TLS):
    """FTP_TLS whose data connections resume the control connection's TLS session.

    Many servers (vsftpd, ProFTPD, FileZilla Server) refuse a data connection
    that does not reuse the session, a check Python's ftplib does not meet.
    """

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


class ImplicitTlsFTP(TlsFTP):
    """FTPS that speaks TLS from the first byte (usually port 990)."""

    def connect(self, host: str = "", port: int = 0, timeout: float = -999,
                source_address: tuple[str, int] | None = None) -> str:
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout, source_address=source_address)
        self.sock = self.context.wrap_socket(raw, server_hostname=host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class _TlsSocket(ssl.SSLSocket):
    """An SSL socket whose closing handshake tolerates a data connection that ended at once.

    With TLS 1.3, an empty listing or file can end before the server's post-handshake
    messages were read, and ``unwrap`` then fails with SHUTDOWN_WHILE_IN_INIT although every
    byte arrived (the server's final reply still says whether the transfer succeeded).
    """

    def unwrap(self) -> socket.socket:
        try:
            return super().unwrap()
        except ssl.SSLError as exc:
            if exc.reason != "SHUTDOWN_WHILE_IN_INIT":
                raise
            return self


def tls_context(conn: FtpConnection) -> ssl.SSLContext:
    """The TLS settings of `conn`: the system's CAs or `ca_file`, verification unless turned off."""
    context = client_context(conn.ca_file, conn.verify)
    context.sslsocket_class = _TlsSocket
    return context
