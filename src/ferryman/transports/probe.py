"""``ferryman check --connect``: log in to a connection and look around, in one line.

`PROBES` maps a connection type to a function ``probe(name, conn) -> str``
that logs in, lists the remote root (or does the protocol's equivalent) and
returns what it saw; it raises `TransientError` / `PermanentError` with a
one-line message for DNS failures, refused connections, TLS problems, bad
logins and missing permissions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ferryman.connections import ConnectionConfig, FtpConnection, SftpConnection
from ferryman.errors import PermanentError


def probe_sftp(name: str, conn: Any) -> str:
    """Log in over SSH and list the login folder."""
    from ferryman.transports.sftp import SftpTransport

    assert isinstance(conn, SftpConnection)
    transport = SftpTransport(conn)
    try:
        with transport.errors("cannot list the login folder"):
            home = transport.sftp.normalize(".")
            entries = transport.sftp.listdir(home)
    finally:
        transport.close()
    warning = "; host key NOT checked (check_host_key = false)" if not conn.check_host_key else ""
    return f"logged in as {conn.user}; {home} has {len(entries)} entries{warning}"


def probe_ftp(name: str, conn: Any) -> str:
    """Log in (with TLS unless turned off) and list the login folder."""
    from ferryman.transports.ftp import FtpTransport

    assert isinstance(conn, FtpConnection)
    transport = FtpTransport(conn)
    try:
        with transport.errors("cannot list the login folder"):
            home = transport.ftp.pwd()
            count = sum(1 for _ in transport.names(home))
        security = transport.security
    finally:
        transport.close()
    return f"logged in as {conn.user} ({security}); {home} has {count} entries"


PROBES: dict[str, Callable[[str, Any], str]] = {
    "sftp": probe_sftp,
    "ftp": probe_ftp,
}
"""Connection checks by connection type."""


def check_connection(name: str, conn: ConnectionConfig) -> str:
    """Run the probe for `conn`'s type; `PermanentError` when there is none."""
    probe = PROBES.get(conn.type)
    if probe is None:
        raise PermanentError(f"connection {name!r}: no check for type {conn.type!r}")
    return probe(name, conn)
