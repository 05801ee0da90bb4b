"""The core, end to end: the real `ferryman` command on temp folders, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from support import FerrymanProcess, ferryman, start_ferryman, wait_for


def write_config(folder: Path, extra_flow: str = "", extra: str = "", *, after: str = '"keep"',
                 to: str = "out", steps: str = "") -> Path:
    config = folder / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
workers = 2
grace = "5s"

[flows.drop]
retry = {{ attempts = 2, delay = "100ms" }}
{extra_flow}

[flows.drop.source]
type = "folder"
path = "in"
after = {after}
rescan = "1s"
settle = "200ms"

{steps}
[[flows.drop.steps]]
type = "deliver"
to = "{to}"
if_exists = "rename"
{extra}
""")
    (folder / "in").mkdir(exist_ok=True)
    return config


def stop(process: FerrymanProcess, sig: int = signal.SIGTERM) -> tuple[str, str]:
    process.send_signal(sig)
    out, err = process.communicate(timeout=30)
    return out, err


def test_once_handles_existing_files_and_never_twice(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    for n in range(5):
        (tmp_path / "in" / f"export-{n}.csv").write_text(f"id\n{n}\n")
    (tmp_path / "in" / ".hidden.csv").write_text("x")
    (tmp_path / "in" / "half.csv.in_progress").write_text("x")
    done = ferryman("run", "--once", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert "5 done" in done.stdout
    assert "export-0.csv →" in done.stdout and str(tmp_path / "out") in done.stdout
    delivered = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert delivered == [f"export-{n}.csv" for n in range(5)]
    again = ferryman("run", "--once", "-c", str(config))
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == delivered
    # A changed file is a new item: delivered again (if_exists = rename keeps both).
    time.sleep(0.01)
    (tmp_path / "in" / "export-0.csv").write_text("id\nchanged\n")
    ferryman("run", "--once", "-c", str(config), check=True)
    assert (tmp_path / "out" / "export-0-1.csv").read_text() == "id\nchanged\n"


def test_daemon_delivers_files_dropped_while_running(tmp_path: Path) -> None:
    config = write_config(tmp_path, after='"delete"')
    daemon = start_ferryman("run", "-c", str(config))
    try:
        wait_for(lambda: (tmp_path / "state" / "ferryman.pid").exists())
        for n in range(20):
            (tmp_path / "in" / f"f{n}.txt").write_bytes(os.urandom(1000) + bytes([n]))
        wait_for(lambda: len(list((tmp_path / "out").glob("f*.txt"))) == 20, timeout=20)
        wait_for(lambda: not list((tmp_path / "in").iterdir()), timeout=10)
    finally:
        _, err = stop(daemon)
    assert daemon.returncode == 0, err
    assert "SIGTERM received" in err


def test_second_daemon_on_same_root_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = start_ferryman("run", "-c", str(config))
    try:
        pid_file = tmp_path / "state" / "ferryman.pid"
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(daemon.pid))
        second = ferryman("run", "-c", str(config), timeout=30)
        assert second.returncode == 2
        assert f"another ferryman (pid {daemon.pid}) is already running" in second.stderr
        status = ferryman("status", "-c", str(config))
        assert f"running, pid {daemon.pid}" in status.stdout
    finally:
        stop(daemon)


def test_unwritable_destination_fails_the_item_clearly_then_retry_succeeds(tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file where a folder should be")
    config = write_config(tmp_path)
    (tmp_path / "in" / "a.csv").write_text("x\n")
    first = ferryman("run", "--once", "-c", str(config))
    assert first.returncode == 1
    assert "failed   drop:" in first.stdout and "cannot create folder" in first.stdout
    history = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    assert len(history) == 1 and history[0]["state"] == "failed" and history[0]["attempts"] == 1
    item_id = history[0]["id"]
    shown = ferryman("show", item_id[:6], "-c", str(config), check=True).stdout
    assert "cannot create folder" in shown and "deliver" in shown
    assert (tmp_path / "in" / "a.csv").exists(), "the original must be kept after a failure"
    blocker.unlink()
    assert "queued again" in ferryman("retry", item_id, "-c", str(config), check=True).stdout
    second = ferryman("run", "--once", "-c", str(config))
    assert second.returncode == 0, second.stdout + second.stderr
    assert (tmp_path / "out" / "a.csv").read_text() == "x\n"


def test_stop_on_error_pauses_until_resume(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra_flow="stop_on_error = true", to="out/{meta.missing}")
    (tmp_path / "in" / "a.csv").write_text("x\n")
    assert ferryman("run", "--once", "-c", str(config)).returncode == 1
    status = ferryman("status", "-c", str(config), check=True).stdout
    assert "paused" in status and "meta.missing" in status
    (tmp_path / "in" / "b.csv").write_text("y\n")
    paused = ferryman("run", "--once", "-c", str(config))
    assert "drop is paused" in paused.stderr and not (tmp_path / "out").exists()
    assert ferryman("resume", "drop", "-c", str(config), check=True).stdout.strip() == "drop resumed"
    assert ferryman("resume", "drop", "-c", str(config), check=True).stdout.strip() == "drop was not paused"


def test_config_mistakes_are_all_reported_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "ferryman.toml"
    config.write_text('[flows.x.source]\ntype = "foldr"\npath = "in"\n[[flows.x.steps]]\ntype = "deliver"\ntoo = "o"\n')
    done = ferryman("check", "-c", str(config))
    assert done.returncode == 2
    assert "flows.x.source.type: unknown source type 'foldr'; did you mean 'folder'?" in done.stderr
    assert "flows.x.steps[0].too: unknown key; did you mean 'to'?" in done.stderr
    assert "flows.x.steps[0].to: required key is missing" in done.stderr
    assert "3 problems in the configuration" in done.stderr


def test_init_writes_a_config_that_checks_and_runs(tmp_path: Path) -> None:
    done = ferryman("init", "--output", "ferryman.toml", cwd=tmp_path, check=True)
    assert "wrote ferryman.toml" in done.stdout
    assert ferryman("init", "--output", "ferryman.toml", cwd=tmp_path).returncode == 2  # no overwrite
    assert ferryman("check", cwd=tmp_path, check=True).returncode == 0
    assert (tmp_path / "inbox").is_dir(), "init makes the folder its config watches"
    (tmp_path / "inbox" / "report.csv").write_text("a,b\n")
    ferryman("run", "--once", cwd=tmp_path, check=True)
    assert (tmp_path / "outbox" / "report.csv").exists()
    assert list((tmp_path / "inbox" / "archive").rglob("report.csv")), "the original is moved to the dated archive"


def test_why_explains_a_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "in" / "a.csv").write_text("x\n")
    (tmp_path / "in" / ".hidden").write_text("x\n")
    before = ferryman("why", str(tmp_path / "in" / "a.csv"), "-c", str(config), check=True).stdout
    assert "drop:" in before
    ferryman("run", "--once", "-c", str(config), check=True)
    after = ferryman("why", str(tmp_path / "in" / "a.csv"), "-c", str(config), check=True).stdout
    assert "is done" in after
    hidden = ferryman("why", str(tmp_path / "in" / ".hidden"), "-c", str(config), check=True).stdout
    assert "hidden" in hidden
    outside = ferryman("why", str(tmp_path / "elsewhere.csv"), "-c", str(config))
    assert outside.returncode == 1 and "not watched by any flow" in outside.stderr


def test_logs_split_by_level_into_files(tmp_path: Path) -> None:
    config = write_config(tmp_path, to="out/{meta.nope}")
    text = config.read_text().replace("[flows.drop]", """[ferryman.log]
files = { debug = "Debug.log", info = "Daily.log", warning = "Error.log", critical = "Break_down.log" }
keep = 366

[flows.drop]""")
    config.write_text(text)
    (tmp_path / "in" / "a.csv").write_text("x\n")
    ferryman("run", "--once", "-c", str(config))
    logs = tmp_path / "state" / "logs"
    assert "failed at deliver" in (logs / "Error.log").read_text()
    assert "failed at deliver" in (logs / "Daily.log").read_text()
    assert (logs / "Break_down.log").read_text() == ""


def test_sighup_reloads_and_exit_when_idle(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    daemon = start_ferryman("run", "-c", str(config), "--exit-when-idle", "4s")
    try:
        wait_for(lambda: (tmp_path / "state" / "ferryman.pid").exists())
        config.write_text(config.read_text().replace('to = "out"', 'to = "out2"'))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        (tmp_path / "in" / "late.csv").write_text("x\n")
        wait_for(lambda: (tmp_path / "out2" / "late.csv").exists(), timeout=15)
        daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            stop(daemon)
    _, err = daemon.communicate()
    assert daemon.returncode == 0
    assert "configuration reloaded" in err and "--exit-when-idle" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny tmpfs needs root")
def test_full_disk_is_a_clear_error_and_leaves_no_partial_file(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(full)],
                             capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {mounted.stderr.decode().strip()}")
    try:
        config = write_config(tmp_path, to=str(full))
        (tmp_path / "in" / "big.bin").write_bytes(os.urandom(1024 * 1024))
        (tmp_path / "in" / "small.bin").write_bytes(b"ok")
        done = ferryman("run", "--once", "-c", str(config))
        assert done.returncode == 1
        assert "no space left on device (disk full)" in done.stdout
        assert (full / "small.bin").read_bytes() == b"ok"
        assert not list(full.glob("*.in_progress")) and not (full / "big.bin").exists()
        assert (tmp_path / "in" / "big.bin").exists()
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_items_delivering_to_the_same_name_never_mix_their_bytes(tmp_path: Path) -> None:
    config = tmp_path / "ferryman.toml"
    config.write_text("""
[ferryman]
root = "state"
workers = 4

[flows.same]
[flows.same.source]
type = "folder"
path = "in"
recursive = true
settle = "10ms"

[[flows.same.steps]]
type = "deliver"
to = "out"
if_exists = "rename"
""")
    contents = {}
    for sub in ("a", "b", "c", "d"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        data = os.urandom(8 * 1024 * 1024)
        (tmp_path / "in" / sub / "r.csv").write_bytes(data)
        contents[sub] = data
    ferryman("run", "--once", "-c", str(config), check=True)
    delivered = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert delivered == ["r-1.csv", "r-2.csv", "r-3.csv", "r.csv"]
    assert sorted((tmp_path / "out" / n).read_bytes() for n in delivered) == sorted(contents.values())


def test_sigterm_enforces_the_grace_period_and_the_item_resumes(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(
        "import time, os\n"
        "def run(path):\n"
        "    with open(os.environ['RUNS'], 'a') as f: f.write(f'{os.getpid()}\\n')\n"
        "    time.sleep(float(os.environ.get('SLEEP', '20')))\n")
    config = write_config(tmp_path, steps='[[flows.drop.steps]]\ntype = "python"\ncall = "slow:run"\n'
                          'result = "ignore"\n')
    config.write_text(config.read_text().replace('grace = "5s"', 'grace = "1s"'))
    env = {"PYTHONPATH": str(tmp_path), "RUNS": str(tmp_path / "runs.log")}
    (tmp_path / "in" / "a.csv").write_text("x\n")
    daemon = start_ferryman("run", "-c", str(config), env=env)
    wait_for(lambda: (tmp_path / "runs.log").exists(), timeout=30)
    started = time.monotonic()
    _, err = stop(daemon)
    assert time.monotonic() - started < 10, "the grace period (1s) is enforced"
    assert "grace period over" in err
    # The cut-short item resumes at the next start, and is delivered once.
    done = ferryman("run", "--once", "-c", str(config), env={**env, "SLEEP": "0"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "out" / "a.csv").read_text() == "x\n"
    assert len((tmp_path / "runs.log").read_text().split()) == 2


def test_retry_of_an_item_whose_original_was_moved_away_says_so(tmp_path: Path) -> None:
    config = write_config(tmp_path, to="out/{meta.nope}")
    text = config.read_text().replace('after = "keep"', 'after = "keep"\nafter_failure = { move = "failed" }')
    config.write_text(text)
    (tmp_path / "in" / "a.csv").write_text("x\n")
    assert ferryman("run", "--once", "-c", str(config)).returncode == 1
    assert (tmp_path / "in" / "failed" / "a.csv").exists()
    (item,) = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    refused = ferryman("retry", item["id"], "-c", str(config))
    assert refused.returncode == 1
    assert "is no longer there" in refused.stderr and "put the file back" in refused.stderr


def test_unusable_state_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace('root = "state"', 'root = "/proc/nope/state"'))
    done = ferryman("run", "--once", "-c", str(config))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("ferryman: ") and "Traceback" not in done.stderr


def test_credentials_in_a_url_are_refused_without_echoing_them(tmp_path: Path) -> None:
    config = write_config(tmp_path, to="ftp://bob:Hunter2Secret@ftp.example.com/in")
    done = ferryman("check", "-c", str(config))
    assert done.returncode == 2
    assert "may not hold credentials" in done.stderr
    assert "Hunter2Secret" not in done.stderr + done.stdout
