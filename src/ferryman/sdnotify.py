"""systemd's notify protocol (sd_notify(3)): a few ``KEY=VALUE`` lines in one datagram.

The documented protocol in a few lines, no library: ``$NOTIFY_SOCKET`` names an AF_UNIX
datagram socket, a filesystem path (``/run/systemd/notify``) or an abstract name (``@…``, a
leading NUL byte on the wire).  Each message is sent with ``sendto``; nothing is read back.
Without ``$NOTIFY_SOCKET`` (not started by systemd with ``Type=notify``) every call does
nothing.  A socket that cannot be reached is logged once, never raised: telling systemd is
never a reason for the daemon to stop.

``$WATCHDOG_USEC`` (with ``$WATCHDOG_PID``, when set, naming this process) asks for a
``WATCHDOG=1`` at least that often; `watchdog_interval` is half of it, as sd_watchdog_enabled(3)
recommends.

Below the protocol, what the daemon reports: `FirstRound` tells when a source has been through
its first scan (READY=1), `status_line` is the STATUS= text.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from ferryman.engine import Engine
from ferryman.errors import FerrymanError, describe
from ferryman.item import State

log = logging.getLogger("ferryman")


class Notifier:
    """Sends notify messages to the socket systemd gave this process (if any)."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._target: str | bytes | None = None
        self._socket: socket.socket | None = None
        self._broken = False
        if address is None:
            return
        if address.startswith("@"):
            self._target = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self._target = address
        else:  # vsock: (systemd ≥ 254, for VMs) and anything else: not for a service on this host
            log.warning("NOTIFY_SOCKET %r is neither an absolute path nor an @abstract name; "
                        "not telling systemd anything", address)
            return
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Notifier:
        """The notifier `$NOTIFY_SOCKET` and `$WATCHDOG_USEC`/`$WATCHDOG_PID` describe."""
        address = os.environ.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if raw and (not pid or pid == str(os.getpid())):
            try:
                usec = int(raw) if int(raw) > 0 else None
            except ValueError:
                log.warning("WATCHDOG_USEC %r is not a number of microseconds; no watchdog pings", raw)
        if address is None:
            log.debug("no NOTIFY_SOCKET: not started by systemd with Type=notify, nothing to tell it")
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between two ``WATCHDOG=1`` (half of what systemd asked), or None: no watchdog."""
        if self.watchdog_usec is None or not self.enabled:
            return None
        return self.watchdog_usec / 2_000_000

    def send(self, **fields: object) -> bool:
        """One datagram of ``KEY=value`` lines (in the order given); True if it was sent."""
        if self._socket is None or self._target is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            self._socket.sendto(message, self._target)
        except OSError as exc:
            if not self._broken:
                log.warning("cannot tell systemd through NOTIFY_SOCKET %s: %s", self.address,
                            exc.strerror or exc)
            self._broken = True
            return False
        if self._broken:
            log.info("NOTIFY_SOCKET %s can be reached again", self.address)
            self._broken = False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` with the ``MONOTONIC_USEC`` that systemd ≥ 253 wants beside it."""
        return self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000,
                         STATUS="reloading the configuration")

    def stopping(self) -> bool:
        return self.send(STOPPING=1, STATUS="stopping: finishing running steps")

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class FirstRound(threading.Event):
    """The stop event one source watches, telling when the source has been through its first round.

    Every source's ``watch`` loops: look at `stop`, scan, offer, wait.  Its second look at the
    event, or its first wait on it, means the first scan is offered: `done` is set.  Setting and
    waiting go to the daemon's shared event.
    """

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.shared = stop
        self._looks = 0
        self.done = threading.Event()

    def is_set(self) -> bool:
        self._looks += 1
        if self._looks > 1:
            self.done.set()
        return self.shared.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        self.done.set()
        return self.shared.wait(timeout)

    def set(self) -> None:
        self.shared.set()

    def clear(self) -> None:
        self.shared.clear()


def status_line(engine: Engine) -> str:
    """STATUS=: the backlog (pending and running items) and the failed ones, from the journal."""
    try:
        counts = engine.journal.counts()
    except FerrymanError as exc:
        return f"cannot read the journal: {describe(exc)}"
    total: dict[str, int] = {}
    for flow in engine.flows:
        for state, n in counts.get(flow, {}).items():
            total[state] = total.get(state, 0) + n
    running, failed = total.get(str(State.RUNNING), 0), total.get(str(State.FAILED), 0)
    line = (f"{len(engine.flows)} flow{'s' if len(engine.flows) != 1 else ''}: "
            f"backlog {total.get(str(State.PENDING), 0) + running} ({running} running), {failed} failed")
    paused = [name for name, flow in engine.flows.items() if flow.paused]
    return line + (f", paused: {', '.join(paused)}" if paused else "")
