"""FTP and FTPS against a real pyftpdlib server: the contract in three modes, logins, TLS, faults."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.errors import PermanentError, TransientError
from ferryman.transports import TransportPool, parse_location
from ferryman.transports.base import Transport
from ferryman.transports.ftp import FtpTransport
from servers.ftp import FtpServer
from transports.contract import TransportContract


@pytest.fixture
def transport(server: FtpServer) -> Iterator[Transport]:
    t = FtpTransport(server.connection())
    yield t
    t.close()


@pytest.fixture
def remote_root(server: FtpServer) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    (server.root / name).mkdir()
    return f"/{name}"


class TestExplicitTls(TransportContract):
    @pytest.fixture
    def server(self, ftp_server: FtpServer) -> FtpServer:
        return ftp_server


class TestImplicitTls(TransportContract):
    @pytest.fixture
    def server(self, ftps_implicit_server: FtpServer) -> FtpServer:
        return ftps_implicit_server


class TestPlainFtp(TransportContract):
    @pytest.fixture
    def server(self, ftp_plain_server: FtpServer) -> FtpServer:
        return ftp_plain_server


class TestOldServer(TransportContract):
    """A server without MLSD that refuses to rename onto an existing file (IIS-like)."""

    @pytest.fixture
    def transport(self, ftp_server: FtpServer) -> Iterator[Transport]:
        t = FtpTransport(ftp_server.connection(user="windows"))
        yield t
        t.close()

    @pytest.fixture
    def server(self, ftp_server: FtpServer) -> FtpServer:
        return ftp_server


# -- logins and TLS ------------------------------------------------------------------------


def test_security_is_reported(ftp_server: FtpServer, ftp_plain_server: FtpServer) -> None:
    t = FtpTransport(ftp_server.connection())
    assert t.security == "explicit TLS"
    t.close()
    t = FtpTransport(ftp_plain_server.connection())
    assert t.security.startswith("plain FTP")
    t.close()


def test_wrong_password_is_permanent_one_line_and_secret(ftp_server: FtpServer) -> None:
    with pytest.raises(PermanentError) as raised:
        FtpTransport(ftp_server.connection(password="hunter2-wrong"))
    message = str(raised.value)
    assert "login failed for user alice" in message
    assert "hunter2-wrong" not in message
    assert "\n" not in message


def test_untrusted_certificate_is_permanent(ftp_server: FtpServer) -> None:
    with pytest.raises(PermanentError, match=r"TLS certificate not trusted.*set ca_file"):
        FtpTransport(ftp_server.connection(ca_file=None))


def test_verify_false_skips_the_certificate_check(ftp_server: FtpServer) -> None:
    FtpTransport(ftp_server.connection(ca_file=None, verify=False)).close()


def test_explicit_tls_against_a_plain_server_names_the_opt_out(ftp_plain_server: FtpServer) -> None:
    with pytest.raises(PermanentError, match=r"does not offer TLS.*tls = false"):
        FtpTransport(ftp_plain_server.connection(tls="explicit"))


def test_plain_login_where_tls_is_required_is_refused(ftp_server: FtpServer) -> None:
    with pytest.raises(PermanentError, match="login failed"):
        FtpTransport(ftp_server.connection(tls=False))


def test_implicit_tls_client_against_explicit_server_fails_cleanly(ftp_server: FtpServer) -> None:
    with pytest.raises((PermanentError, TransientError)) as raised:
        FtpTransport(ftp_server.connection(tls="implicit", timeout=3))
    assert "\n" not in str(raised.value)


def test_connection_refused_is_transient() -> None:
    from ferryman.connections import FtpConnection
    from support import free_port

    conn = FtpConnection(type="ftp", host="127.0.0.1", port=free_port(), tls=False, timeout=5)
    with pytest.raises(TransientError, match="connection refused"):
        FtpTransport(conn)


# -- permissions and full disks ------------------------------------------------------------


def _file(tmp_path: Path, data: bytes = b"payload") -> Path:
    path = tmp_path / f"f-{uuid.uuid4().hex[:6]}"
    path.write_bytes(data)
    return path


def test_permission_denied_is_permanent(ftp_server: FtpServer, tmp_path: Path) -> None:
    t = FtpTransport(ftp_server.connection(user="reader"))
    try:
        with pytest.raises(PermanentError, match="550"):
            t.put(_file(tmp_path), "/denied.csv")
        with pytest.raises(PermanentError, match="550"):
            t.makedirs("/not-allowed.d/x")
        assert not (ftp_server.root / "denied.csv").exists()
    finally:
        t.close()


def test_quota_exceeded_552_is_permanent(ftp_server: FtpServer, tmp_path: Path) -> None:
    t = FtpTransport(ftp_server.connection(user="full"))
    try:
        with pytest.raises(PermanentError, match="storage quota exceeded \\(552"):
            t.put(_file(tmp_path), "/quota.csv")
        # The control connection is still usable after the refusal.
        assert t.stat("/quota.csv") is None
    finally:
        t.close()


def test_disk_full_452_is_transient(ftp_server: FtpServer, tmp_path: Path) -> None:
    t = FtpTransport(ftp_server.connection(user="busy"))
    try:
        with pytest.raises(TransientError, match="remote disk full \\(452"):
            t.put(_file(tmp_path), "/busy.csv")
    finally:
        t.close()


def test_download_of_missing_file_says_so(transport_plain: Transport, tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match="cannot download /nothing-here"):
        transport_plain.get("/nothing-here", tmp_path / "x")


@pytest.fixture
def transport_plain(ftp_plain_server: FtpServer) -> Iterator[Transport]:
    t = FtpTransport(ftp_plain_server.connection())
    yield t
    t.close()


def test_relative_paths_are_from_the_login_folder(transport_plain: Transport,
                                                  ftp_plain_server: FtpServer,
                                                  tmp_path: Path) -> None:
    transport_plain.makedirs("rel.d/sub")
    transport_plain.put(_file(tmp_path, b"rel"), "rel.d/sub/x.txt")
    assert (ftp_plain_server.root / "rel.d" / "sub" / "x.txt").read_bytes() == b"rel"


# -- faults ---------------------------------------------------------------------------------


def test_dropped_connection_mid_transfer_is_transient_and_the_pool_reconnects(
    fresh_ftp_server: FtpServer, tmp_path: Path
) -> None:
    src = tmp_path / "big.bin"
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    pool = TransportPool({"srv": fresh_ftp_server.connection()})
    location = parse_location("ftp://srv/out")
    (fresh_ftp_server.root / "out").mkdir()
    temp_on_disk = fresh_ftp_server.root / "out" / "big.bin.in_progress"
    finished = threading.Event()

    def drop_when_writing() -> None:
        while not (temp_on_disk.exists() and temp_on_disk.stat().st_size > 0):
            if finished.wait(0.005):
                return
        fresh_ftp_server.drop_sessions()

    killer = threading.Thread(target=drop_when_writing, daemon=True)
    killer.start()
    try:
        with pytest.raises(TransientError, match=r"connection lost|aborted|closing"), \
                pool.open(location) as t:
            t.put(src, "/out/big.bin.in_progress")
    finally:
        finished.set()
        killer.join()
    assert not (fresh_ftp_server.root / "out" / "big.bin").exists()
    with pool.open(location) as t:
        t.put(_file(tmp_path, b"second try"), "/out/big.bin.in_progress")
        t.rename("/out/big.bin.in_progress", "/out/big.bin")
    assert (fresh_ftp_server.root / "out" / "big.bin").read_bytes() == b"second try"
    pool.close()


def test_a_connection_that_died_idle_is_replaced_on_next_use(fresh_ftp_server: FtpServer, tmp_path: Path) -> None:
    pool = TransportPool({"srv": fresh_ftp_server.connection()})
    location = parse_location("ftp://srv/")
    with pool.open(location) as t:
        t.put(_file(tmp_path, b"1"), "/one")
    fresh_ftp_server.restart()
    # The pooled connection died with the old server while idle: the next use logs in again.
    with pool.open(location) as t:
        t.put(_file(tmp_path, b"2"), "/two")
    assert (fresh_ftp_server.root / "two").read_bytes() == b"2"
    pool.close()


@pytest.mark.parametrize("fixture", ["ftp_server", "ftp_plain_server"])
def test_active_mode(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    server: FtpServer = request.getfixturevalue(fixture)
    t = FtpTransport(server.connection(passive=False))
    try:
        name = f"/active-{uuid.uuid4().hex[:6]}.bin"
        data = os.urandom(70_000)
        t.put(_file(tmp_path, data), name)
        assert [f.size for f in t.list("/") if f.path == name] == [70_000]
        t.get(name, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == data
    finally:
        t.close()
