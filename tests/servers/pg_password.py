"""A throwaway PostgreSQL cluster that asks for a password (SCRAM), per TESTING.md.

The machine's server trusts every local login, so it cannot tell a right password from a wrong
one.  This cluster can: `initdb` with ``--auth=scram-sha-256`` under the ``postgres`` user (it
refuses root), then ``postgres`` on a free port of 127.0.0.1, its socket in its own folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import free_port, unavailable

USER = "admin"
PASSWORD = "s3cret:with\\odd chars"
"""A password with the characters a passfile must escape (``:`` and ``\\``) and a space."""


def _bin() -> Path | None:
    base = Path("/usr/lib/postgresql")
    versions = sorted(base.iterdir(), reverse=True) if base.is_dir() else []
    for version in versions:
        if (version / "bin" / "initdb").exists():
            return version / "bin"
    return None


class PasswordPostgres:
    """One cluster; `dsn` logs in without the password (give it separately)."""

    def __init__(self) -> None:
        binaries = _bin()
        if binaries is None:
            unavailable("initdb is not installed (postgresql)")
        try:
            self.owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("no postgres user to run initdb as")
        if os.geteuid() != 0:
            unavailable("starting a cluster as the postgres user needs root")
        assert binaries is not None
        self.bin = binaries
        self.folder = Path(tempfile.mkdtemp(prefix="ferryman-pg-"))
        self.folder.chmod(0o755)
        os.chown(self.folder, self.owner.pw_uid, self.owner.pw_gid)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres"

    def _as_postgres(self, argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(argv, user=self.owner.pw_uid, group=self.owner.pw_gid, cwd=self.folder,
                                **kwargs)  # type: ignore[call-overload, no-any-return]

    def start(self) -> None:
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD + "\n")
        os.chown(pwfile, self.owner.pw_uid, self.owner.pw_gid)
        init = self._as_postgres([str(self.bin / "initdb"), "-D", str(self.folder / "data"), "-U", USER,
                                  f"--pwfile={pwfile}", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, err = init.communicate(timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {err.decode(errors='replace')[-500:]}")
        log = open(self.folder / "postgres.log", "ab")  # noqa: SIM115 - kept open by the child
        self.process = self._as_postgres(
            [str(self.bin / "postgres"), "-D", str(self.folder / "data"), "-p", str(self.port),
             "-k", str(self.folder), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.dsn, password=PASSWORD, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.folder / "postgres.log").read_text(errors="replace")[-1000:]
                    self.stop()
                    raise RuntimeError(f"postgres did not start:\n{tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.folder)


@pytest.fixture(scope="session")
def pg_password() -> Iterator[PasswordPostgres]:
    server = PasswordPostgres()
    server.start()
    yield server
    server.stop()
