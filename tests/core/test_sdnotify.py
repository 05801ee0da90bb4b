"""The notify protocol on a real datagram socket, and what the daemon's watchdog vouches for.

The daemon end to end (``ferryman run`` under a NOTIFY_SOCKET) is tests/e2e/test_systemd.py.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.config import load
from ferryman.daemon import Daemon
from ferryman.sdnotify import FirstRound, Notifier


@pytest.fixture
def bound(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_one_datagram_of_lines(tmp_path: Path, bound: socket.socket) -> None:
    notifier = Notifier(str(tmp_path / "notify.sock"))
    try:
        assert notifier.reloading()
        lines = bound.recv(4096).decode().splitlines()
    finally:
        notifier.close()
    assert lines[0] == "RELOADING=1"
    assert lines[1].startswith("MONOTONIC_USEC=") and int(lines[1].split("=")[1]) > 0
    assert lines[2] == "STATUS=reloading the configuration"


def test_abstract_name() -> None:
    name = f"ferryman-sdnotify-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier("@" + name)
        try:
            assert notifier.ready("watching")
            assert sock.recv(4096) == b"READY=1\nSTATUS=watching"
        finally:
            notifier.close()


def test_watchdog_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_environment()
    assert notifier.watchdog_interval == 1.5  # half of what systemd asks
    notifier.close()
    monkeypatch.setenv("WATCHDOG_PID", "1")
    notifier = Notifier.from_environment()
    assert notifier.watchdog_interval is None
    notifier.close()
    monkeypatch.delenv("NOTIFY_SOCKET")
    monkeypatch.delenv("WATCHDOG_PID")
    notifier = Notifier.from_environment()
    assert not notifier.enabled and notifier.watchdog_interval is None and not notifier.watchdog()


def test_first_round() -> None:
    shared = threading.Event()
    first = FirstRound(shared)
    assert not first.is_set() and not first.done.is_set()  # the loop's first look: before the scan
    assert not first.is_set() and first.done.is_set()  # its second: the first scan is offered
    other = FirstRound(shared)
    assert not other.wait(0) and other.done.is_set()  # a wait also ends the first round
    other.set()
    assert shared.is_set() and first.is_set()


def test_no_ping_once_a_source_thread_ended(tmp_path: Path, bound: socket.socket) -> None:
    """The watchdog vouches for the sources too: a watcher thread that ended stops the pings."""
    config = tmp_path / "ferryman.toml"
    config.write_text("[flows.a.source]\ntype = 'folder'\npath = 'in'\n[[flows.a.steps]]\ntype = 'checksum'\n")
    daemon = Daemon(load(config))
    daemon.systemd = Notifier(str(tmp_path / "notify.sock"), watchdog_usec=2)
    alive = threading.Event()
    thread = threading.Thread(target=alive.wait, daemon=True)
    thread.start()
    daemon._threads.append(thread)
    try:
        daemon._alive(sources=True)
        assert bound.recv(4096) == b"WATCHDOG=1"
        alive.set()
        thread.join()
        daemon._pinged = 0.0
        daemon._alive(sources=True)
        bound.settimeout(0.2)
        with pytest.raises(TimeoutError):
            bound.recv(4096)
        daemon._alive(sources=False)  # a stop or a reload waits for running steps: no sources then
        bound.settimeout(5)
        assert bound.recv(4096) == b"WATCHDOG=1"
    finally:
        daemon.systemd.close()
