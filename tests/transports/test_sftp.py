"""SFTP against a real OpenSSH sshd: the transport contract, logins, host keys and faults."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.errors import PermanentError, TransientError
from ferryman.secrets import Secret
from ferryman.transports import TransportPool, parse_location
from ferryman.transports.base import Transport
from ferryman.transports.sftp import SftpTransport
from servers.sshd import SshServer
from transports.contract import TransportContract


@pytest.fixture
def transport(sshd: SshServer) -> Iterator[Transport]:
    t = SftpTransport(sshd.connection())
    yield t
    t.close()


@pytest.fixture
def remote_root(tmp_path: Path) -> str:
    # sshd runs on this machine, so a local folder is also a remote one (absolute path).
    root = tmp_path / "remote"
    root.mkdir()
    return str(root)


class TestSftpTransport(TransportContract):
    pass


# -- logins and host keys ------------------------------------------------------------------


def test_login_with_an_encrypted_key(sshd: SshServer, tmp_path: Path) -> None:
    conn = sshd.connection(key_file=str(sshd.locked_key), key_passphrase="open sesame")
    t = SftpTransport(conn)
    try:
        t.makedirs(str(tmp_path / "x"))
        assert t.stat(str(tmp_path / "x")) is not None
    finally:
        t.close()


def test_encrypted_key_without_passphrase(sshd: SshServer) -> None:
    with pytest.raises(PermanentError, match="is encrypted; set key_passphrase"):
        SftpTransport(sshd.connection(key_file=str(sshd.locked_key)))


def test_wrong_key_passphrase_is_not_echoed(sshd: SshServer) -> None:
    conn = sshd.connection(key_file=str(sshd.locked_key), key_passphrase="not-the-passphrase")
    with pytest.raises(PermanentError) as raised:
        SftpTransport(conn)
    assert "wrong key_passphrase" in str(raised.value)
    assert "not-the-passphrase" not in str(raised.value)


def test_wrong_password_is_permanent_and_not_echoed(sshd: SshServer) -> None:
    conn = sshd.connection(key_file=None, password="hunter2-secret")
    with pytest.raises(PermanentError) as raised:
        SftpTransport(conn)
    message = str(raised.value)
    assert f"login failed for user {sshd.user}" in message
    assert "hunter2-secret" not in message
    assert "\n" not in message


def test_password_from_an_env_secret_is_not_echoed(sshd: SshServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRYMAN_TEST_SFTP_PW", "s3cr3t-value")
    conn = sshd.connection(key_file=None, password=Secret("env", "FERRYMAN_TEST_SFTP_PW"))
    with pytest.raises(PermanentError) as raised:
        SftpTransport(conn)
    assert "s3cr3t-value" not in str(raised.value)


def test_key_the_server_does_not_know(sshd: SshServer) -> None:
    with pytest.raises(PermanentError, match="login failed"):
        SftpTransport(sshd.connection(key_file=str(sshd.unknown_key)))


def test_missing_key_file(sshd: SshServer, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="does not exist"):
        SftpTransport(sshd.connection(key_file=str(tmp_path / "nope")))


def test_unknown_host_key_names_host_and_fingerprint(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(PermanentError) as raised:
        SftpTransport(sshd.connection(known_hosts=str(empty)))
    message = str(raised.value)
    assert f"[127.0.0.1]:{sshd.port}" in message
    assert "unknown host key SHA256:" in message


def test_changed_host_key_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    other = Path(f"{sshd.unknown_key}.pub").read_text().split()[:2]
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {' '.join(other)}\n")
    with pytest.raises(PermanentError, match="does not match"):
        SftpTransport(sshd.connection(known_hosts=str(wrong)))


def test_pinned_host_key(sshd: SshServer, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "no_known_hosts")
    SftpTransport(sshd.connection(known_hosts=nowhere, host_key=sshd.host_key)).close()
    other = " ".join(Path(f"{sshd.unknown_key}.pub").read_text().split()[:2])
    with pytest.raises(PermanentError, match="does not match the pinned host_key"):
        SftpTransport(sshd.connection(host_key=other))


def test_pinned_fingerprint(sshd: SshServer) -> None:
    t = SftpTransport(sshd.connection(known_hosts=None, host_key=None, check_host_key=False))
    assert t._ssh is not None
    from ferryman.transports.ssh import fingerprint

    pin = fingerprint(t._ssh.get_remote_server_key())
    t.close()
    SftpTransport(sshd.connection(host_key=pin)).close()


def test_host_key_check_can_be_turned_off(sshd: SshServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    SftpTransport(sshd.connection(known_hosts=str(empty), check_host_key=False)).close()


def test_connection_refused_is_transient() -> None:
    from ferryman.connections import SftpConnection
    from support import free_port

    conn = SftpConnection(type="sftp", host="127.0.0.1", port=free_port(), user="x",
                          password="y", timeout=5)
    with pytest.raises(TransientError, match="connection refused"):
        SftpTransport(conn)


# -- permission and missing paths --------------------------------------------------------


def test_permission_denied_is_permanent(sshd: SshServer, tmp_path: Path) -> None:
    readonly = SftpTransport(sshd.connection(port=sshd.readonly_port))
    try:
        src = tmp_path / "f"
        src.write_bytes(b"x")
        with pytest.raises(PermanentError, match="permission denied"):
            readonly.put(src, str(tmp_path / "out.csv"))
        with pytest.raises(PermanentError, match="permission denied"):
            readonly.makedirs(str(tmp_path / "newdir"))
        assert readonly.stat(str(src)) is not None  # reading still works
    finally:
        readonly.close()


def test_upload_into_a_missing_folder_is_permanent(transport: Transport, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    with pytest.raises(PermanentError, match="no such file"):
        transport.put(src, str(tmp_path / "missing" / "f"))


def test_makedirs_over_a_file_is_permanent(transport: Transport, tmp_path: Path) -> None:
    (tmp_path / "plain").write_bytes(b"")
    with pytest.raises(PermanentError, match="a file has that name"):
        transport.makedirs(str(tmp_path / "plain"))


# -- faults ---------------------------------------------------------------------------------


def _big_file(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        for _ in range(size // (1 << 20)):
            f.write(os.urandom(1 << 20))
    return path


def test_dropped_connection_mid_transfer_is_transient_and_the_pool_reconnects(
    fresh_sshd: SshServer, tmp_path: Path
) -> None:
    src = _big_file(tmp_path / "big.bin", 64 << 20)
    out = tmp_path / "out"
    out.mkdir()
    pool = TransportPool({"srv": fresh_sshd.connection()})
    location = parse_location(f"sftp://srv{out}")
    temp = str(out / "big.bin.in_progress")
    started = threading.Event()

    def drop_when_writing() -> None:
        # Wait until the upload is under way, then kill the session under it.
        while not (os.path.exists(temp) and os.path.getsize(temp) > 0):
            if started.wait(0.005):
                return
        fresh_sshd.drop_sessions()

    killer = threading.Thread(target=drop_when_writing, daemon=True)
    killer.start()
    try:
        with pytest.raises(TransientError, match=r"connection lost|server reported"), \
                pool.open(location) as t:
            t.put(src, temp)
    finally:
        started.set()
        killer.join()
    assert not (out / "big.bin").exists(), "nothing may appear under the final name"
    # The pool closed the broken transport: the next use logs in again and works.
    small = tmp_path / "small.bin"
    small.write_bytes(b"after the drop")
    with pool.open(location) as t:
        t.put(small, temp)
        t.rename(temp, str(out / "big.bin"))
    assert (out / "big.bin").read_bytes() == b"after the drop"
    pool.close()


def test_a_connection_that_died_idle_is_replaced_on_next_use(fresh_sshd: SshServer, tmp_path: Path) -> None:
    pool = TransportPool({"srv": fresh_sshd.connection()})
    location = parse_location(f"sftp://srv{tmp_path}")
    src = tmp_path / "a"
    src.write_bytes(b"a")
    with pool.open(location) as t:
        t.put(src, str(tmp_path / "b"))
    fresh_sshd.restart()
    # The pooled connection died with the old server while idle: the next use logs in again.
    with pool.open(location) as t:
        t.put(src, str(tmp_path / "c"))
    assert (tmp_path / "c").read_bytes() == b"a"
    pool.close()


def test_server_down_is_transient(fresh_sshd: SshServer) -> None:
    conn = fresh_sshd.connection()
    fresh_sshd.stop()
    with pytest.raises(TransientError, match="connection refused"):
        SftpTransport(conn)


def test_list_follows_file_links_but_not_folder_links(transport: Transport, tmp_path: Path) -> None:
    root = tmp_path / "linked"
    (root / "real").mkdir(parents=True)
    (root / "real" / "a.csv").write_bytes(b"abc")
    (root / "alias.csv").symlink_to(root / "real" / "a.csv")
    (root / "real" / "loop").symlink_to(root)
    (root / "dangling.csv").symlink_to(root / "nowhere")
    found = {f.path: f.size for f in transport.list(str(root), recursive=True)}
    assert found == {f"{root}/alias.csv": 3, f"{root}/real/a.csv": 3}
