"""What every transport is: it moves bytes, nothing more.

Atomicity (temporary name, verify, rename) belongs to the ``deliver`` step,
written once for all transports.  Paths are ``/``-separated strings relative
to the transport's root (absolute on servers, a plain path for local files).
Each transport maps its library's exceptions to `TransientError` /
`PermanentError` at its boundary.
"""

from __future__ import annotations

import socket
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ferryman.errors import TransientError, one_line, unresolved


@dataclass(frozen=True)
class RemoteFile:
    """A file as a transport lists it."""

    path: str
    size: int
    mtime: float | None = None
    etag: str | None = None


class Transport(ABC):
    """One open connection to one place.  Not shared between threads at the same time."""

    atomic_put: ClassVar[bool] = False
    """True when a `put` object appears only when complete (S3): no temporary name needed."""

    put_checks_size: ClassVar[bool] = False
    """True when `put` itself fails unless the whole file was written (local folders): the size
    needs no second look."""

    @abstractmethod
    def put(self, local: Path, path: str) -> None:
        """Write `local`'s bytes to `path` (replacing it), durably where the transport can."""

    @abstractmethod
    def get(self, path: str, local: Path) -> None:
        """Copy `path` to the local file `local`, streaming."""

    @abstractmethod
    def rename(self, src: str, dst: str) -> None:
        """Rename `src` to `dst`, replacing `dst` if it exists."""

    @abstractmethod
    def remove(self, path: str) -> None:
        """Delete a file (no error when it is already gone)."""

    def remove_many(self, paths: Sequence[str]) -> Iterator[str]:
        """Delete every one of `paths`, yielding each once it is gone (a store with batch deletes
        yields a batch at a time).  Stops at the first failure, raising it."""
        for path in paths:
            self.remove(path)
            yield path

    @abstractmethod
    def stat(self, path: str) -> RemoteFile | None:
        """The file at `path`, or None when there is none."""

    @abstractmethod
    def list(self, path: str, recursive: bool = False) -> Iterator[RemoteFile]:
        """Files (not folders) under the folder or prefix `path`."""

    @abstractmethod
    def makedirs(self, path: str) -> None:
        """Create folder `path` and its parents (a no-op where folders do not exist, as in S3)."""

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def checksum(self, path: str, algorithm: str = "sha256") -> str | None:
        """The file's hex digest when the server can tell it cheaply, else None."""
        return None

    def close(self) -> None:  # noqa: B027 - optional
        """Close the connection."""


NETWORK_ERRORS = (socket.gaierror, TimeoutError, ConnectionError, EOFError)
"""Failures of the network itself (not of the protocol): worth a retry with a fresh connection."""


def network_error(exc: BaseException, what: str, host: str, port: int, timeout: float) -> TransientError:
    """The one-line `TransientError` for a DNS failure, a timeout, a refused or a lost connection."""
    if isinstance(exc, socket.gaierror):
        return TransientError(f"{what}: {unresolved(host, exc)}")
    if isinstance(exc, TimeoutError):
        return TransientError(f"{what}: timed out after {timeout:g}s")
    if isinstance(exc, ConnectionRefusedError):
        return TransientError(f"{what}: connection refused (is the server running on port {port}?)")
    return TransientError(f"{what}: connection lost ({one_line(exc)})")
