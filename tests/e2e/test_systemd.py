"""systemd: the real ``ferryman run`` speaking the notify protocol to a real datagram socket bound
as ``NOTIFY_SOCKET``, and the units ``ferryman service install`` writes (checked by
``systemd-analyze verify`` where it runs)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import FerrymanProcess, ferryman, start_ferryman, wait_for

CONFIG = """
[ferryman]
root = "state"
workers = 2
grace = "5s"

[flows.drop]
[flows.drop.source]
type = "folder"
path = "in"
ready = "lock"
after = "delete"
[[flows.drop.steps]]
type = "deliver"
to = "out"

[flows.broken]
[flows.broken.source]
type = "folder"
path = "bad"
ready = "lock"
[[flows.broken.steps]]
type = "unzip"
"""


class Listener:
    """A datagram socket systemd would hold: every message the daemon sent, in order."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.settimeout(0.1)
        self.messages: list[dict[str, str]] = []

    def read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))

    def wait(self, key: str, after: int = 0, timeout: float = 20.0) -> int:
        """The index of the first message from `after` on that has `key`."""
        def found() -> int | None:
            self.read()
            return next((i + 1 for i, m in enumerate(self.messages) if i >= after and key in m), None)

        return int(wait_for(found, timeout=timeout)) - 1  # type: ignore[arg-type]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    got = Listener(str(tmp_path / "notify.sock"))
    yield got
    got.close()


def setup(tmp_path: Path) -> Path:
    config = tmp_path / "ferryman.toml"
    config.write_text(CONFIG)
    for folder in ("in", "out", "bad"):
        (tmp_path / folder).mkdir()
    # ready = "lock": files without a .lock are taken at the first scan (no settling)
    (tmp_path / "in" / "early.txt").write_bytes(b"early")
    (tmp_path / "bad" / "not.zip").write_bytes(b"not a zip")
    return config


def daemon_env(address: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    if address is not None:
        env["NOTIFY_SOCKET"] = address
    return {**env, **extra}


def stop(daemon: FerrymanProcess) -> tuple[str, str]:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
    return daemon.communicate(timeout=30)


def test_ready_status_watchdog_reloading_stopping(tmp_path: Path, listener: Listener) -> None:
    config = setup(tmp_path)
    daemon = start_ferryman("run", "-c", str(config),
                            env=daemon_env(str(tmp_path / "notify.sock"), WATCHDOG_USEC="400000"))
    try:
        ready = listener.wait("READY")
        # READY comes after the first scan: what was already there is in the journal by then.
        seen = ferryman("history", "--json", "-c", str(config), check=True).stdout
        assert "early.txt" in seen and "not.zip" in seen
        assert listener.messages[ready]["STATUS"].startswith("2 flows: backlog")
        # The failure shows in STATUS once the unzip step failed.
        wait_for(lambda: (listener.read(), any("1 failed" in m.get("STATUS", "") for m in listener.messages))[1])
        pings = [i for i, m in enumerate(listener.messages) if m.get("WATCHDOG") == "1"]
        first = listener.wait("WATCHDOG", after=(pings[-1] + 1) if pings else 0)
        listener.wait("WATCHDOG", after=first + 1)  # more than one: they keep coming
        daemon.send_signal(signal.SIGHUP)
        reloading = listener.wait("RELOADING")
        message = listener.messages[reloading]
        assert message["RELOADING"] == "1"
        assert int(message["MONOTONIC_USEC"]) > 0
        again = listener.wait("READY", after=reloading + 1)  # reloaded: ready again
        daemon.send_signal(signal.SIGTERM)
        stopping = listener.wait("STOPPING", after=again + 1)
        _, err = daemon.communicate(timeout=30)
    finally:
        stop(daemon)
    listener.read()
    assert daemon.returncode == 0, err
    assert ready < reloading < again < stopping
    assert not any("READY" in m or "RELOADING" in m for m in listener.messages[stopping + 1:])
    assert "NOTIFY_SOCKET" not in err


def test_abstract_socket_name(tmp_path: Path) -> None:
    config = setup(tmp_path)
    address = f"@ferryman-test-{os.getpid()}-{tmp_path.name}"
    got = Listener(address)
    try:
        done = ferryman("run", "-c", str(config), "--exit-when-idle", "1s", env=daemon_env(address), timeout=60)
        got.read()
    finally:
        got.close()
    assert done.returncode == 0, done.stderr
    keys = [key for m in got.messages for key in m if key in ("READY", "STOPPING")]
    assert keys == ["READY", "STOPPING"]
    assert not any("WATCHDOG" in m for m in got.messages)  # no WATCHDOG_USEC: no pings


def test_without_notify_socket(tmp_path: Path) -> None:
    config = setup(tmp_path)
    done = ferryman("run", "-v", "-c", str(config), "--exit-when-idle", "1s", env=daemon_env(None), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "no NOTIFY_SOCKET: not started by systemd with Type=notify, nothing to tell it" in done.stderr


def test_socket_that_is_gone(tmp_path: Path) -> None:
    config = setup(tmp_path)
    gone = tmp_path / "gone.sock"
    done = ferryman("run", "-c", str(config), "--exit-when-idle", "1s",
                    env=daemon_env(str(gone), WATCHDOG_USEC="200000"), timeout=60)
    assert done.returncode == 0, done.stderr  # telling systemd is never a reason to stop
    line = f"cannot tell systemd through NOTIFY_SOCKET {gone}: No such file or directory"
    assert done.stderr.count(line) == 1, done.stderr


def test_socket_name_not_understood(tmp_path: Path) -> None:
    config = setup(tmp_path)
    done = ferryman("run", "-c", str(config), "--exit-when-idle", "1s", env=daemon_env("notify.sock"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert ("NOTIFY_SOCKET 'notify.sock' is neither an absolute path nor an @abstract name; "
            "not telling systemd anything") in done.stderr


# ---- ferryman service install ------------------------------------------------------------------

UNIT_CONFIG = """
[ferryman]
root = "state"
grace = "10s"

[flows.keep]
[flows.keep.source]
type = "folder"
path = "kept"
[[flows.keep.steps]]
type = "deliver"
to = "sftp://partner/in"

[flows.move]
[flows.move.source]
type = "folder"
paths = ["drop", "drop2"]
after = { move = "../archive/{now:%Y}" }
[[flows.move.steps]]
type = "deliver"
to = "outbox/{now:%Y-%m}/x"

[connections.partner]
type = "sftp"
host = "partner.example"
user = "u"
password = "p"
"""


def unit_setup(tmp_path: Path) -> Path:
    config = tmp_path / "ferryman.toml"
    config.write_text(UNIT_CONFIG)
    for folder in ("state", "kept", "drop", "drop2", "archive", "outbox"):
        (tmp_path / folder).mkdir()
    return config


def settings(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))


def test_print_unit(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    done = ferryman("service", "install", "-c", str(config), "--print", check=True)
    unit = settings(done.stdout)
    assert unit["Type"] == "notify"
    assert unit["WatchdogSec"] == "60s"
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["Restart"] == "on-failure"
    assert unit["RestartPreventExitStatus"] == "2"
    assert unit["ProtectSystem"] == "strict"
    assert unit["NoNewPrivileges"] == "yes"
    assert unit["TimeoutStopSec"] == "40s"
    assert unit["ExecStart"].endswith(f" run -c {config}")
    # the root, the folders moved from, where they are moved and the local destination; not the
    # folder that is only read ("kept"), not the sftp destination
    assert unit["ReadWritePaths"].split() == [str(tmp_path / name) for name in
                                              ("archive", "drop", "drop2", "outbox", "state")]
    # pytest's folders are under /tmp: a private /tmp would hide them
    assert unit["PrivateTmp"] == "no"
    assert "PrivateTmp=no" in done.stderr
    assert "User" not in unit


def test_missing_folders_widen_with_a_note(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    shutil.rmtree(tmp_path / "state")
    done = ferryman("service", "install", "-c", str(config), "--print", check=True)
    assert settings(done.stdout)["ReadWritePaths"] == str(tmp_path)
    assert (f"note: root: {tmp_path / 'state'} does not exist yet, so ReadWritePaths names {tmp_path}; "
            "create it and install again for a narrower unit") in done.stderr


def test_user(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    account = pwd.getpwuid(os.getuid())
    done = ferryman("service", "install", "-c", str(config), "--print", "--user", account.pw_name, check=True)
    unit = settings(done.stdout)
    assert unit["User"] == account.pw_name
    assert "Group" in unit


def test_unknown_user(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    done = ferryman("service", "install", "-c", str(config), "--print", "--user", "no-such-user-here")
    assert done.returncode == 2
    assert done.stderr == "ferryman: --user no-such-user-here: no such user on this machine\n"


def test_write_then_refuse_to_overwrite(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    target = tmp_path / "units" / "ferryman.service"
    target.parent.mkdir()
    done = ferryman("service", "install", "-c", str(config), "-o", str(target), check=True)
    assert f"wrote {target}" in done.stdout
    assert "systemctl daemon-reload && systemctl enable --now ferryman" in done.stdout
    first = target.read_text()
    assert "Type=notify" in first
    again = ferryman("service", "install", "-c", str(config), "-o", str(target))
    assert again.returncode == 2
    assert again.stderr == (f"ferryman: {target} exists; give --force to replace it "
                            "(or --print to see the new unit)\n")
    forced = ferryman("service", "install", "-c", str(config), "-o", str(target), "--force")
    assert forced.returncode == 0, forced.stderr
    assert list(target.parent.iterdir()) == [target]


def test_cannot_write(tmp_path: Path) -> None:
    config = unit_setup(tmp_path)
    target = tmp_path / "no-such-folder" / "ferryman.service"
    done = ferryman("service", "install", "-c", str(config), "-o", str(target))
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (f"ferryman: cannot write {target}: No such file or directory "
                                            "(run as root, or --print > FILE)")


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; make test installs it)")
    config = unit_setup(tmp_path)
    account = pwd.getpwuid(os.getuid())
    target = tmp_path / "ferryman-test.service"
    ferryman("service", "install", "-c", str(config), "-o", str(target), "--user", account.pw_name, check=True)
    done = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 and "Failed to" in done.stderr and "ferryman-test.service" not in done.stderr:
        pytest.skip(f"systemd-analyze cannot run in this container: {done.stderr.strip().splitlines()[0]}")
    assert done.returncode == 0, done.stderr
    assert "ferryman-test.service" not in done.stderr, done.stderr  # no complaint about the unit itself


def test_watchdog_for_another_pid(tmp_path: Path) -> None:
    """WATCHDOG_PID names the process systemd watches: another one's variables are not for us."""
    config = setup(tmp_path)
    got = Listener(str(tmp_path / "notify.sock"))
    try:
        done = ferryman("run", "-c", str(config), "--exit-when-idle", "1s", timeout=60,
                        env=daemon_env(str(tmp_path / "notify.sock"), WATCHDOG_USEC="200000", WATCHDOG_PID="1"))
        got.read()
    finally:
        got.close()
    assert done.returncode == 0, done.stderr
    assert any("READY" in m for m in got.messages)
    assert not any("WATCHDOG" in m for m in got.messages)


def test_relative_config_becomes_absolute(tmp_path: Path) -> None:
    unit_setup(tmp_path)
    done = ferryman("service", "install", "-c", "ferryman.toml", "--print", cwd=tmp_path, check=True)
    unit = settings(done.stdout)
    assert unit["ExecStart"].endswith(f" run -c {tmp_path / 'ferryman.toml'}")
    assert unit["ExecStart"].startswith("/")
    assert unit["WorkingDirectory"] == str(tmp_path)


def test_invalid_config_writes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "ferryman.toml"
    config.write_text("[ferryman]\nroot = 'state'\n")
    target = tmp_path / "ferryman.service"
    done = ferryman("service", "install", "-c", str(config), "-o", str(target))
    assert done.returncode == 2
    assert f"error: {config}: no flows" in done.stderr
    assert not target.exists()


def test_steps_that_write_locally(tmp_path: Path) -> None:
    """compress_old and append_csv write in their own folders; a watched folder only read needs nothing."""
    config = tmp_path / "ferryman.toml"
    config.write_text("""
[ferryman]
root = "state"

[flows.logs.source]
type = "schedule"
every = "1d"
[[flows.logs.steps]]
type = "compress_old"
path = "logs/{meta.each}"
age = "6d"

[flows.pi.source]
type = "folder"
path = "in"
[[flows.pi.steps]]
type = "append_csv"
to = "active"
""")
    for folder in ("state", "in", "logs", "active"):
        (tmp_path / folder).mkdir()
    done = ferryman("service", "install", "-c", str(config), "--print", check=True)
    assert settings(done.stdout)["ReadWritePaths"].split() == [str(tmp_path / name) for name in
                                                               ("active", "logs", "state")]
