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

from ferryman.connections import ConnectionConfig, FtpConnection, S3Connection, SftpConnection, SmtpConnection
from ferryman.errors import PermanentError
from ferryman.sources.http.client import probe_http
from ferryman.sources.imap.client import probe_imap


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


def probe_s3(name: str, conn: Any) -> str:
    """Sign a request with the keys and list the buckets (AccessDenied still proves the keys work)."""
    from ferryman.transports.s3 import S3Transport

    assert isinstance(conn, S3Connection)
    transport = S3Transport(conn)
    where = conn.endpoint or f"AWS {conn.region}"
    try:
        try:
            with transport.errors("list buckets on", where):
                buckets = [b["Name"] for b in transport.client.list_buckets().get("Buckets", [])]
        except PermanentError as exc:
            if "access denied" not in str(exc):
                raise
            return f"{where}: keys accepted; listing buckets is not allowed (fine when flows name their bucket)"
    finally:
        transport.close()
    shown = ", ".join(buckets[:5]) + (" …" if len(buckets) > 5 else "")
    return f"{where}: {len(buckets)} bucket(s){': ' + shown if buckets else ''}"


def probe_smtp(name: str, conn: Any) -> str:
    """Connect (STARTTLS / implicit TLS as configured), log in and say NOOP."""
    from ferryman.transports.smtp import SmtpSender

    assert isinstance(conn, SmtpConnection)
    return SmtpSender(conn).probe()


PROBES: dict[str, Callable[[str, Any], str]] = {
    "sftp": probe_sftp,
    "ftp": probe_ftp,
    "s3": probe_s3,
    "smtp": probe_smtp,
    "imap": probe_imap,
    "http": probe_http,
}
"""Connection checks by connection type."""


def check_connection(name: str, conn: ConnectionConfig) -> str:
    """Run the probe for `conn`'s type; `PermanentError` when there is none."""
    probe = PROBES.get(conn.type)
    if probe is None:
        raise PermanentError(f"connection {name!r}: no check for type {conn.type!r}")
    return probe(name, conn)
