"""Transports by URL scheme, and a pool that reuses their connections.

A destination is a local path (or ``file://``) or ``SCHEME://CONNECTION/path``
where CONNECTION names a ``[connections.NAME]`` of that type.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ferryman.connections import ConnectionConfig
from ferryman.errors import PermanentError, TransientError
from ferryman.transports.base import RemoteFile, Transport

__all__ = ["TRANSPORTS", "Location", "RemoteFile", "Transport", "TransportPool", "parse_location"]

TransportFactory = Callable[[ConnectionConfig | None], Transport]


# The protocol libraries (paramiko, boto3, ftplib) are imported when a connection is first
# opened, so commands that never open one (check, status, history …) start quickly.


def _local(_: ConnectionConfig | None) -> Transport:
    from ferryman.transports.local import LocalTransport

    return LocalTransport()


def _ftp(conn: ConnectionConfig | None) -> Transport:
    from ferryman.transports.ftp import open_ftp

    return open_ftp(conn)


def _s3(conn: ConnectionConfig | None) -> Transport:
    from ferryman.transports.s3 import open_s3

    return open_s3(conn)


def _sftp(conn: ConnectionConfig | None) -> Transport:
    from ferryman.transports.sftp import open_sftp

    return open_sftp(conn)


TRANSPORTS: dict[str, TransportFactory] = {
    "file": _local,
    "ftp": _ftp,
    "s3": _s3,
    "sftp": _sftp,
}
"""Transport factories by URL scheme (the connection type of the same name)."""


@dataclass(frozen=True)
class Location:
    """A parsed destination: scheme, connection name (None for local) and path."""

    scheme: str
    connection: str | None
    path: str

    def __str__(self) -> str:
        if self.scheme == "file":
            return self.path
        return f"{self.scheme}://{self.connection}/{self.path.lstrip('/')}"


def parse_location(url: str) -> Location:
    """``/srv/out`` → local; ``sftp://partner/incoming`` → connection ``partner``, path ``/incoming``."""
    if "://" not in url:
        return Location("file", None, url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Location("file", None, unquote(parts.path))
    if scheme not in TRANSPORTS:
        known = ", ".join(f"{s}://" for s in sorted(TRANSPORTS))
        raise ValueError(f"unknown URL scheme {scheme}:// in {url!r}; use a local path or {known}")
    if "@" in parts.netloc:
        raise ValueError(f"{scheme}:// URLs may not hold credentials: name a connection "
                         f"({scheme}://NAME/path) and give its password under [connections.NAME] "
                         "as { env = \"VAR\" }")
    if not parts.netloc:
        raise ValueError(f"{url!r} names no connection: write {scheme}://CONNECTION/path")
    return Location(scheme, parts.netloc, unquote(parts.path) or "/")


class TransportPool:
    """Open transports kept for reuse, one idle list per connection (thread-safe).

    ``with pool.open(location) as transport:`` checks a connection out;
    a connection that raised `TransientError` is closed instead of returned,
    so the next use reconnects.
    """

    def __init__(self, connections: Mapping[str, ConnectionConfig]) -> None:
        self._connections = connections
        self._idle: dict[tuple[str, str | None], list[Transport]] = defaultdict(list)
        self._lock = threading.Lock()

    def _connect(self, location: Location) -> Transport:
        factory = TRANSPORTS[location.scheme]
        if location.connection is None:
            return factory(None)
        conn = self._connections.get(location.connection)
        if conn is None:
            raise PermanentError(
                f"no connection named {location.connection!r} (declare it under [connections.{location.connection}])"
            )
        if conn.type != location.scheme:
            raise PermanentError(
                f"{location} names connection {location.connection!r} of type {conn.type!r}, "
                f"not {location.scheme!r}"
            )
        return factory(conn)

    @contextmanager
    def open(self, location: Location) -> Iterator[Transport]:
        key = (location.scheme, location.connection)
        with self._lock:
            transport = self._idle[key].pop() if self._idle[key] else None
        if transport is None:
            transport = self._connect(location)
        try:
            yield transport
        except TransientError:
            transport.close()
            raise
        except BaseException:
            with self._lock:
                self._idle[key].append(transport)
            raise
        else:
            with self._lock:
                self._idle[key].append(transport)

    def close(self) -> None:
        with self._lock:
            idle = [t for ts in self._idle.values() for t in ts]
            self._idle.clear()
        for transport in idle:
            transport.close()
