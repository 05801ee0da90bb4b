"""SFTP and FTP end to end: the real `ferryman` command against real sshd and pyftpdlib servers.

Deliveries survive a server killed mid-transfer and restarted (every file
ends up exactly once and byte-identical, nothing partial under a final
name); remote sources pick files up, download them and delete the originals
only after success.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.ftp import PASSWORD, FtpServer
from servers.sshd import SshServer
from support import ferryman, start_ferryman, wait_for

FILES = 12
SIZE = 3 * 1024 * 1024


@pytest.fixture
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    server = SshServer(tmp_path_factory.mktemp("sshd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def ftp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FtpServer]:
    server = FtpServer(tmp_path_factory.mktemp("ftp"), "explicit")
    server.start()
    yield server
    server.stop()


def connections(sftp: SshServer, ftp: FtpServer) -> str:
    return f"""
[connections.partner]
type = "sftp"
host = "127.0.0.1"
port = {sftp.port}
user = "{sftp.user}"
key_file = "{sftp.client_key}"
known_hosts = "{sftp.known_hosts}"
timeout = "5s"

[connections.drop]
type = "ftp"
host = "127.0.0.1"
port = {ftp.port}
user = "alice"
password = {{ env = "TEST_FTP_PASSWORD" }}
ca_file = "{ftp.cert}"
timeout = "5s"
"""


ENV = {"TEST_FTP_PASSWORD": PASSWORD}


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def kill_during_upload(watch: Path, server: SshServer | FtpServer, done: threading.Event,
                       killed: list[bool]) -> None:
    """Stop `server` as soon as a temporary file in `watch` has bytes, and start it again later."""
    while not done.is_set():
        partial = [p for p in watch.glob("*.in_progress") if p.exists() and p.stat().st_size > 0] \
            if watch.exists() else []
        if partial:
            server.stop()
            killed.append(True)
            time.sleep(1.0)
            server.start()
            return
        time.sleep(0.002)


@pytest.mark.parametrize("victim", ["sftp", "ftp"])
def test_deliveries_survive_a_server_killed_mid_transfer(victim: str, tmp_path: Path,
                                                         sftp_server: SshServer, ftp: FtpServer) -> None:
    sftp_out = tmp_path / "sftp-out"
    ftp_out = ftp.root / "incoming.d" / "v1.2"  # dots in folder names must survive
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
workers = 3
{connections(sftp_server, ftp)}
[flows.out]
retry = {{ attempts = 40, delay = "250ms", backoff = 1.0 }}

[flows.out.source]
type = "folder"
path = "in"
settle = "100ms"

[[flows.out.steps]]
type = "deliver"
to = "sftp://partner{sftp_out}"
if_exists = "rename"

[[flows.out.steps]]
type = "deliver"
to = "ftp://drop/incoming.d/v1.2"
if_exists = "rename"
""")
    source = tmp_path / "in"
    source.mkdir()
    for n in range(FILES):
        (source / f"export-{n:02d}.bin").write_bytes(os.urandom(SIZE + n))
    expected = tree(source)

    server: SshServer | FtpServer = sftp_server if victim == "sftp" else ftp
    done = threading.Event()
    killed: list[bool] = []
    killer = threading.Thread(target=kill_during_upload,
                              args=(sftp_out if victim == "sftp" else ftp_out, server, done, killed),
                              daemon=True)
    killer.start()
    try:
        run = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=180)
    finally:
        done.set()
        killer.join()
    assert killed, "the server was never caught mid-transfer"
    assert run.returncode == 0, run.stdout + run.stderr
    # Exactly once (if_exists = rename would have made export-01-1.bin for a second copy),
    # byte-identical, and nothing temporary left behind.
    assert tree(sftp_out) == expected
    assert tree(ftp_out) == expected
    # And never again.
    again = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=60)
    assert again.returncode == 0, again.stderr
    assert tree(sftp_out) == expected and tree(ftp_out) == expected


@pytest.mark.parametrize("kind", ["sftp", "ftp"])
def test_remote_source_downloads_and_deletes_after_success(kind: str, tmp_path: Path,
                                                           sftp_server: SshServer, ftp: FtpServer) -> None:
    if kind == "sftp":
        drop = tmp_path / "remote-drop"
        url = f"sftp://partner{drop}"
    else:
        drop = ftp.root / "exports.d"
        url = "ftp://drop/exports.d"
    drop.mkdir()
    (drop / "sub").mkdir()
    sent = {}
    for name in ("jane.doe@example.com_bmgf.csv", "people 2024.csv", "sub/nested.csv"):
        data = os.urandom(50_000)
        (drop / name).write_bytes(data)
        sent[name.rsplit("/", 1)[-1]] = hashlib.sha256(data).hexdigest()
        past = time.time() - 60
        os.utime(drop / name, (past, past))
    (drop / "still-uploading.csv.part").write_bytes(b"x")
    (drop / "notes.txt").write_bytes(b"not a csv")
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
{connections(sftp_server, ftp)}
[flows.pick]
[flows.pick.source]
type = "{kind}"
url = "{url}"
include = ["*.csv"]
recursive = true
settle = "200ms"
after = "delete"

[[flows.pick.steps]]
type = "deliver"
to = "out/{{now:%Y}}"
""")
    run = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path / "out" / time.strftime("%Y")
    assert {p.name: digest(p) for p in out.iterdir()} == sent
    # The originals are gone from the server; what was not taken is still there.
    left = sorted(p.relative_to(drop).as_posix() for p in drop.rglob("*") if p.is_file())
    assert left == ["notes.txt", "still-uploading.csv.part"]
    again = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=60)
    assert again.returncode == 0, again.stderr


def test_check_connect_reports_each_connection(tmp_path: Path, sftp_server: SshServer,
                                               ftp: FtpServer) -> None:
    (tmp_path / "pickup").mkdir()
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""[ferryman]\nroot = "state"\n{connections(sftp_server, ftp)}
[flows.relay.source]
type = "sftp"
url = "sftp://partner{tmp_path}/pickup"

[[flows.relay.steps]]
type = "deliver"
to = "ftp://drop/incoming/{{now:%Y}}"
""")
    ok = ferryman("check", "--connect", "-c", str(config), env=ENV)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "partner (sftp): ok" in ok.stdout and "drop (ftp): ok" in ok.stdout
    assert f"flows.relay.source.url: sftp://partner{tmp_path}/pickup can be listed (empty)" in ok.stdout
    assert "flows.relay.steps[0].to: ftp://drop/incoming is writable" in ok.stdout
    assert not any(".ferryman-check" in p.name for p in ftp.root.rglob("*")), "the probe file is removed"
    missing = config.read_text().replace("/pickup", "/nowhere")
    config.write_text(missing)
    gone = ferryman("check", "--connect", "-c", str(config), env=ENV)
    assert gone.returncode == 3, gone.stdout + gone.stderr
    assert f"flows.relay.source.url: cannot list sftp://partner{tmp_path}/nowhere" in gone.stderr
    ftp.stop()
    down = ferryman("check", "--connect", "-c", str(config), env=ENV)
    ftp.start()
    assert down.returncode == 3  # a server that cannot be reached
    assert "drop (ftp): FAILED" in down.stdout and "connection refused" in down.stdout
    assert PASSWORD not in down.stdout + down.stderr


def test_daemon_relays_sftp_drops_to_ftps_through_a_restart(tmp_path: Path, sftp_server: SshServer,
                                                             ftp: FtpServer) -> None:
    """The daemon polls an SFTP drop, delivers to FTPS, deletes the originals; the SFTP server
    restarts meanwhile and files dropped after it still flow."""
    drop = tmp_path / "drop"
    drop.mkdir()
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
grace = "5s"
{connections(sftp_server, ftp)}
[flows.relay]
retry = {{ attempts = 20, delay = "200ms", backoff = 1.0 }}

[flows.relay.source]
type = "sftp"
url = "sftp://partner{drop}"
poll_interval = "200ms"
after = {{ move = "done/{{now:%Y}}" }}

[[flows.relay.steps]]
type = "deliver"
to = "ftp://drop/relay/{{now:%Y}}"
""")
    year = time.strftime("%Y")
    out = ftp.root / "relay" / year
    sent: dict[str, str] = {}

    def put(name: str) -> None:
        data = os.urandom(20_000)
        (drop / name).write_bytes(data)
        sent[name] = hashlib.sha256(data).hexdigest()

    daemon = start_ferryman("run", "-c", str(config), env=ENV)
    try:
        for n in range(3):
            put(f"first-{n}.csv")
        wait_for(lambda: out.exists() and len(list(out.iterdir())) == 3, timeout=30)
        sftp_server.restart()
        for n in range(3):
            put(f"second-{n}.csv")
        wait_for(lambda: len(list(out.iterdir())) == 6, timeout=30)
        wait_for(lambda: len(list((drop / "done" / year).iterdir())) == 6, timeout=10)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert {p.name: digest(p) for p in out.iterdir()} == sent
    assert sorted(p.name for p in drop.iterdir()) == ["done"]


def test_ferryman_killed_mid_upload_resumes_without_duplicates(tmp_path: Path, sftp_server: SshServer,
                                                               ftp: FtpServer) -> None:
    """SIGKILL while a file is half written on the server: the next run rewrites the same
    temporary name, renames once, and never leaves a second copy or a temporary file."""
    out = tmp_path / "sftp-out"
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
{connections(sftp_server, ftp)}
[flows.out]
[flows.out.source]
type = "folder"
path = "in"
settle = "100ms"

[[flows.out.steps]]
type = "deliver"
to = "sftp://partner{out}"
if_exists = "rename"
""")
    source = tmp_path / "in"
    source.mkdir()
    for n in range(FILES):
        (source / f"export-{n:02d}.bin").write_bytes(os.urandom(SIZE + n))
    expected = tree(source)
    first = start_ferryman("run", "--once", "-c", str(config), env=ENV)
    try:
        wait_for(lambda: out.exists() and any(p.stat().st_size > 0 for p in out.glob("*.in_progress")),
                 timeout=60, interval=0.002)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    assert list(out.glob("*.in_progress")), "killed mid-upload"
    again = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert tree(out) == expected


def test_once_with_the_source_server_down_says_why(tmp_path: Path, sftp_server: SshServer,
                                                   ftp: FtpServer) -> None:
    config = tmp_path / "ferryman.toml"
    config.write_text(f"""
[ferryman]
root = "state"
{connections(sftp_server, ftp)}
[flows.pick.source]
type = "ftp"
url = "ftp://drop/anything"

[[flows.pick.steps]]
type = "deliver"
to = "out"
""")
    ftp.stop()
    try:
        run = ferryman("run", "--once", "-c", str(config), env=ENV, timeout=60)
    finally:
        ftp.start()
    assert run.returncode == 3  # a source that cannot be read
    assert "connection refused" in run.stdout + run.stderr
    assert PASSWORD not in run.stdout + run.stderr
