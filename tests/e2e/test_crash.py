"""SIGKILL the daemon at random moments while 2,000 files flow; every file ends up delivered exactly
once, byte-identical, no `*.in_progress` left, and no original is deleted before its delivery."""

from __future__ import annotations

import hashlib
import os
import random
import signal
import time
from pathlib import Path

from support import ferryman, start_ferryman, wait_for

FILES = 2000


def started(folder: Path, pid: int) -> bool:
    """The daemon `pid` holds the pid file (its signal handlers are installed)."""
    pid_file = folder / "state" / "ferryman.pid"
    return pid_file.exists() and pid_file.read_text().strip() == str(pid)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("FERRYMAN_CHAOS_SEED", "7")))
    staging, inbox, out = tmp_path / "staging", tmp_path / "in", tmp_path / "out"
    for folder in (staging, inbox):
        folder.mkdir()
    expected: dict[str, str] = {}
    for n in range(FILES):
        path = staging / f"export-{n:04d}.csv"
        path.write_bytes(os.urandom(rng.randint(200, 8000)))
        expected[path.name] = digest(path)
    config = tmp_path / "ferryman.toml"
    config.write_text("""
[ferryman]
root = "state"
workers = 4
grace = "1s"

[flows.chaos]
retry = { attempts = 5, delay = "100ms" }

[flows.chaos.source]
type = "folder"
path = "in"
after = "delete"
rescan = "1s"
settle = "100ms"

[[flows.chaos.steps]]
type = "deliver"
to = "out"
if_exists = "rename"
""")
    pending = sorted(staging.iterdir())
    moved: set[str] = set()

    def feed(count: int) -> None:
        for path in pending[:count]:
            path.rename(inbox / path.name)  # arrives by rename, as a careful producer does
            moved.add(path.name)
        del pending[:count]

    def check_no_original_lost() -> None:
        still_in = {p.name for p in inbox.iterdir()}
        for name in moved - still_in:
            delivered = out / name
            assert delivered.exists(), f"{name} was disposed of but never delivered"
            assert digest(delivered) == expected[name], f"{name} delivered with different bytes"

    kills = 0
    while pending or kills < 6:
        daemon = start_ferryman("run", "-c", str(config))
        feed(rng.randint(150, 400))
        wait_for(lambda d=daemon: started(tmp_path, d.pid), timeout=30)
        time.sleep(rng.uniform(0.05, 1.0))  # killed somewhere in the middle of the work
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=30)
        kills += 1
        check_no_original_lost()
    daemon = start_ferryman("run", "-c", str(config))
    wait_for(lambda: started(tmp_path, daemon.pid), timeout=30)
    try:
        wait_for(lambda: not any(inbox.iterdir()), timeout=180, interval=0.2)
    except AssertionError:
        daemon.send_signal(signal.SIGUSR1)
        time.sleep(1)
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
        status = ferryman("status", "-c", str(config)).stdout
        left = len(list(inbox.iterdir()))
        raise AssertionError(f"{left} files left in the inbox\n{status}\n{err[-12000:]}") from None
    daemon.send_signal(signal.SIGTERM)
    _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-2000:]
    check_no_original_lost()
    delivered = {p.name: digest(p) for p in out.iterdir()}
    assert not [n for n in delivered if n.endswith(".in_progress")], "partial files left behind"
    assert set(delivered) == set(expected), (
        f"missing: {sorted(set(expected) - set(delivered))[:5]}, extra (duplicates): "
        f"{sorted(set(delivered) - set(expected))[:5]}")
    assert delivered == expected
    assert kills >= 6
