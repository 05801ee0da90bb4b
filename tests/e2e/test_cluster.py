"""Several real `ferryman run` daemons, a root each, on one PostgreSQL journal, one inbox with
``after = { move = "done" }`` and one outbox (issue 16): every original is delivered once and
moved once, by the instance that processed it (no ``done/x-1.dat``, no false disposal error),
also when a daemon is SIGKILLed mid-way (the others finish its items and its disposals)."""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from journal.test_postgres import schema_url
from support import FerrymanProcess, start_ferryman, wait_for

FILES = 240


@pytest.fixture
def journal_url(pg_database: str) -> Iterator[str]:
    """A fresh schema on the real PostgreSQL, as a ``[ferryman] journal`` URL; dropped after."""
    schema = f"cluster_{secrets.token_hex(4)}"
    with psycopg.connect(pg_database, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield schema_url(pg_database, schema)
    finally:
        with psycopg.connect(pg_database, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def instance(tmp_path: Path, n: int, journal: str) -> Path:
    """The config of instance `n`: its own root, the shared journal, inbox, archive and outbox."""
    folder = tmp_path / f"instance{n}"
    folder.mkdir()
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
journal = "{journal}"
workers = 3
lease = "2s"
grace = "1s"

[flows.shared]
retry = {{ attempts = 5, delay = "100ms" }}

[flows.shared.source]
type = "folder"
path = "{tmp_path / 'in'}"
after = {{ move = "{tmp_path / 'done'}" }}
rescan = "1s"
settle = "50ms"

[[flows.shared.steps]]
type = "deliver"
to = "{tmp_path / 'out'}"
if_exists = "rename"
""")
    return config


def started(config: Path, pid: int) -> bool:
    pid_file = config.parent / "state" / "ferryman.pid"
    return pid_file.exists() and pid_file.read_text().strip() == str(pid)


def run_cluster(tmp_path: Path, journal: str, count: int, kill: bool) -> tuple[dict[str, str], list[str]]:
    """Start `count` daemons, feed FILES files while they run (SIGKILLing one mid-way if `kill`),
    wait until every original is archived; the expected digests and the survivors' logs."""
    inbox, done, out = tmp_path / "in", tmp_path / "done", tmp_path / "out"
    for folder in (inbox, done, out):
        folder.mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    expected: dict[str, str] = {}
    for n in range(FILES):
        path = staging / f"x{n:04d}.dat"
        path.write_bytes(os.urandom(300 + n))
        expected[path.name] = digest(path)
    configs = [instance(tmp_path, n, journal) for n in range(count)]
    daemons: list[FerrymanProcess] = []
    for config in configs:
        daemon = start_ferryman("run", "-c", str(config))
        daemons.append(daemon)
    for config, daemon in zip(configs, daemons, strict=True):
        wait_for(lambda c=config, d=daemon: started(c, d.pid), timeout=30)
    pending = sorted(staging.iterdir())
    killed: FerrymanProcess | None = None
    for n, path in enumerate(pending):
        path.rename(inbox / path.name)
        if n % 20 == 19:
            time.sleep(0.05)
        if kill and killed is None and n == FILES // 2:
            killed = daemons[0]
            killed.send_signal(signal.SIGKILL)  # with items claimed, running, finished, undisposed
            killed.wait(timeout=30)
    logs: list[str] = []
    try:
        wait_for(lambda: not any(inbox.iterdir()) and len(list(done.iterdir())) >= FILES,
                 timeout=180, interval=0.2)
        time.sleep(1.0)  # a late second move would show now
    finally:
        for daemon in daemons:
            if daemon is not killed:
                daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            if daemon is not killed:
                _, err = daemon.communicate(timeout=60)
                logs.append(err)
                assert daemon.returncode == 0, err[-3000:]
            else:
                daemon.communicate(timeout=60)
    return expected, logs


def check(tmp_path: Path, expected: dict[str, str], logs: list[str]) -> None:
    archived = {p.name: digest(p) for p in (tmp_path / "done").iterdir()}
    assert archived == expected, (f"missing: {sorted(set(expected) - set(archived))[:5]}, "
                                  f"moved twice: {sorted(set(archived) - set(expected))[:5]}")
    delivered = {p.name: digest(p) for p in (tmp_path / "out").iterdir()}
    assert delivered == expected, (f"missing: {sorted(set(expected) - set(delivered))[:5]}, "
                                   f"extra: {sorted(set(delivered) - set(expected))[:5]}")
    for log in logs:
        assert "could not dispose" not in log, log[-3000:]
        assert "FileNotFoundError" not in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]


def test_three_daemons_move_every_original_once(tmp_path: Path, journal_url: str) -> None:
    expected, logs = run_cluster(tmp_path, journal_url, 3, kill=False)
    check(tmp_path, expected, logs)


def test_a_killed_daemons_originals_are_moved_once_by_the_others(tmp_path: Path, journal_url: str) -> None:
    expected, logs = run_cluster(tmp_path, journal_url, 3, kill=True)
    check(tmp_path, expected, logs)


DIE_BEFORE_DISPOSAL = """
import os, sys
from ferryman.sources.folder.source import FolderSource
from ferryman.cli import main

def die(self, item, outcome):
    os._exit(9)  # the item is finished in the journal; its original is not moved yet

FolderSource.finalize = die
sys.argv = ["ferryman", "run", "--once", "-c", sys.argv[1]]
main()
"""


def test_a_disposal_cut_short_by_a_crash_is_finished_once_by_another_instance(
        tmp_path: Path, journal_url: str) -> None:
    for folder in ("in", "done", "out"):
        (tmp_path / folder).mkdir()
    (tmp_path / "in" / "x.dat").write_bytes(b"payload\n")
    first, second = instance(tmp_path, 0, journal_url), instance(tmp_path, 1, journal_url)
    crashed = subprocess.run([sys.executable, "-c", DIE_BEFORE_DISPOSAL, str(first)], capture_output=True,
                             text=True, timeout=120, check=False)
    assert crashed.returncode == 9, crashed.stdout + crashed.stderr
    assert (tmp_path / "out" / "x.dat").exists() and (tmp_path / "in" / "x.dat").exists()
    with psycopg.connect(journal_url, autocommit=True) as conn:
        ((disposal, owner),) = conn.execute("SELECT disposal, owner FROM items").fetchall()
    assert disposal == "pending" and owner.endswith(str(first.parent / "state")), (disposal, owner)
    time.sleep(2.5)  # the crashed owner's lease (2 s) runs out: nobody renews it
    taken = start_ferryman("run", "--once", "-c", str(second))
    out, err = taken.communicate(timeout=120)
    assert taken.returncode == 0, out + err
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == ["x.dat"]
    assert not (tmp_path / "in" / "x.dat").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["x.dat"], "delivered once"
    assert "could not dispose" not in out + err and "Traceback" not in out + err
    with psycopg.connect(journal_url, autocommit=True) as conn:
        ((disposal, owner),) = conn.execute("SELECT disposal, owner FROM items").fetchall()
    assert disposal == "done" and owner.endswith(str(second.parent / "state")), (disposal, owner)
