"""Helpers shared by the test suites: ports, certificates, CI-aware skips, running `ferryman`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

IN_CI = bool(os.environ.get("CI"))
FERRYMAN = [sys.executable, "-m", "ferryman"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind to 0, read it, close)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unavailable(reason: str) -> None:
    """Skip the test locally; under CI a missing server is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_binary(name: str, *candidates: str) -> str:
    """The path of a program the test needs (skip locally / fail in CI when missing)."""
    for candidate in (name, *candidates):
        if shutil.which(candidate):
            return str(shutil.which(candidate))
        if os.path.isabs(candidate) and os.access(candidate, os.X_OK):
            return candidate
    unavailable(f"{name} is not installed (make test installs it)")
    raise AssertionError("unreachable")


def make_cert(folder: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost/127.0.0.1: (cert.pem, key.pem)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
             "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )
    return cert, key


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> object:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {condition}")
        time.sleep(interval)


def ferryman(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
             timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the real `ferryman` command the way a user would, capturing its output."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run([*FERRYMAN, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"ferryman {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class FerrymanProcess(subprocess.Popen[str]):
    """A background `ferryman` whose output goes to temporary files, not pipes: a daemon that logs
    a lot must never block on a full pipe that the test reads only at the end."""

    def __init__(self, argv: list[str], cwd: Path | None, env: dict[str, str]) -> None:
        self._out = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        self._err = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        super().__init__(argv, cwd=cwd, env=env, text=True, stdout=self._out, stderr=self._err)

    def output(self) -> tuple[str, str]:
        """What the process printed so far: (stdout, stderr)."""
        texts = []
        for f in (self._out, self._err):
            f.flush()
            f.seek(0)
            texts.append(f.read())
        return texts[0], texts[1]

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self.output()


def start_ferryman(*args: str, cwd: Path | None = None,
                   env: dict[str, str] | None = None) -> FerrymanProcess:
    """Start `ferryman` (usually `run`, the daemon) in the background; `communicate()` gives its output."""
    return FerrymanProcess([*FERRYMAN, *args], cwd, {**os.environ, **(env or {})})


def descendants(pid: int) -> list[int]:
    """Every descendant process of `pid` (servers like sshd and dovecot fork per session)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
