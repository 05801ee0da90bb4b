"""``<root>/ferryman.pid``: held locked (flock) by the running ferryman, read by ``status``.

Its own module so that ``ferryman status`` can ask whether a daemon runs without
importing the daemon.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ferryman.errors import FerrymanError


class AlreadyRunning(FerrymanError):
    """Another ferryman holds the pid file of this root."""


@contextmanager
def pid_lock(root: Path) -> Iterator[None]:
    """Hold ``<root>/ferryman.pid`` locked (flock) for the life of the process."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "ferryman.pid"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise AlreadyRunning(
                f"another ferryman (pid {other}) is already running on {root}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def running_pid(root: Path) -> int | None:
    """The pid of the ferryman running on `root`, or None."""
    path = root / "ferryman.pid"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return int(text) if text.isdigit() else -1
    finally:
        os.close(fd)
    return None
