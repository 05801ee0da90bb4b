"""A real OpenSSH sshd on 127.0.0.1 for SFTP tests (recipe in TESTING.md).

`SshServer` generates a host key and client keys, writes the config and a
known_hosts file, and starts ``sshd -D`` on two free ports: the main one, and
a read-only one (``internal-sftp -R``) where every write is refused with a real
"permission denied".  It can drop live sessions, stop, and start again on the
same ports for fault tests.  Processes are stopped by their own pids.

Fixtures: ``sshd`` (one per session) and ``fresh_sshd`` (one per test, for
tests that stop or restart the server).  Import them into a test module with
``from servers.sshd import sshd, fresh_sshd``.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.connections import SftpConnection
from support import descendants, free_port, require_binary, wait_for

SSHD = "/usr/sbin/sshd"


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class SshServer:
    """One sshd in `folder`; call `start()` (the fixtures do)."""

    user = getpass.getuser()
    """Who logs in: the user running the tests (sshd started by anyone else than root can only
    let its own user in)."""

    def __init__(self, folder: Path) -> None:
        require_binary(SSHD)
        keygen = require_binary("ssh-keygen")
        self.folder = folder
        self.port = free_port()
        self.readonly_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        host_key = folder / "host_ed25519"
        self.client_key = folder / "client_ed25519"
        self.locked_key = folder / "client_locked"
        self.unknown_key = folder / "stranger_ed25519"
        for path, passphrase in ((host_key, ""), (self.client_key, ""),
                                 (self.locked_key, "open sesame"), (self.unknown_key, "")):
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)],
                           check=True, capture_output=True)
        self.host_key = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        """The server's public key as ``ssh-ed25519 AAAA…`` (for a ``host_key`` pin)."""
        authorized = [Path(f"{k}.pub").read_text() for k in (self.client_key, self.locked_key)]
        (folder / "authorized_keys").write_text("".join(authorized))
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(
            "".join(f"[127.0.0.1]:{p} {self.host_key}\n" for p in (self.port, self.readonly_port))
        )
        self.config = folder / "sshd_config"
        self.config.write_text(f"""\
ListenAddress 127.0.0.1
Port {self.port}
Port {self.readonly_port}
HostKey {host_key}
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/authorized_keys
StrictModes no
PermitRootLogin prohibit-password
# Passwords are asked for and checked (and refused: root may not log in with one).
PasswordAuthentication yes
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 100:30:200
Subsystem sftp internal-sftp
Match LocalPort {self.readonly_port}
    ForceCommand internal-sftp -R
""")

    def start(self) -> None:
        with contextlib.suppress(PermissionError):  # only root needs (and may create) it
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        log = open(self.folder / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        with log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                            stdout=log, stderr=log)
        wait_for(self._listening, timeout=10)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            log = (self.folder / "sshd.log").read_text(errors="replace")
            raise AssertionError(f"sshd exited with {self.process.returncode}:\n{log}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def drop_sessions(self) -> None:
        """Kill every live session (connections break mid-transfer); keep listening."""
        if self.process is not None:
            _kill(descendants(self.process.pid))

    def stop(self) -> None:
        """Kill the sessions and stop the listener; `start()` brings it back on the same ports."""
        if self.process is None:
            return
        self.drop_sessions()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        # The listener is gone; make sure the port is free again before a restart.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self._port_busy():
            time.sleep(0.02)

    def _port_busy(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def restart(self) -> None:
        self.stop()
        self.start()

    def connection(self, **overrides: Any) -> SftpConnection:
        """An `SftpConnection` that logs in with the client key and checks the host key."""
        values: dict[str, Any] = {
            "type": "sftp", "host": "127.0.0.1", "port": self.port, "user": self.user,
            "key_file": str(self.client_key), "known_hosts": str(self.known_hosts),
            "timeout": 10,
        }
        values.update(overrides)
        return SftpConnection.model_validate({k: v for k, v in values.items() if v is not None})


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """One sshd for the whole test session (do not stop it: use `fresh_sshd` for that)."""
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fresh_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """An sshd of its own for a test that drops sessions, stops or restarts it."""
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()
