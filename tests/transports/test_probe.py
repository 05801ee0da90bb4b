"""`ferryman check --connect` probes for SFTP and FTP: one clear line for success and for each failure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ferryman.connections import FtpConnection, SftpConnection
from ferryman.errors import FerrymanError
from ferryman.probe import PROBES, check_connection
from servers.ftp import FtpServer
from servers.sshd import SshServer
from support import free_port


def failure(conn: Any) -> str:
    with pytest.raises(FerrymanError) as raised:
        check_connection("partner", conn)
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_probes_are_registered() -> None:
    assert {"sftp", "ftp"} <= set(PROBES)
    assert all(isinstance(p, Callable) for p in PROBES.values())  # type: ignore[arg-type]


def test_sftp_ok(sshd: SshServer) -> None:
    said = check_connection("partner", sshd.connection())
    assert said.startswith(f"logged in as {sshd.user}; /") and "entries" in said


def test_sftp_ok_warns_when_host_keys_are_not_checked(sshd: SshServer) -> None:
    said = check_connection("partner", sshd.connection(check_host_key=False))
    assert "host key NOT checked" in said


def test_sftp_dns_failure() -> None:
    conn = SftpConnection(type="sftp", host="no-such-host.invalid", user="u", password="p", timeout=5)
    assert 'cannot connect: cannot resolve host "no-such-host.invalid" (DNS: ' in failure(conn)


def test_sftp_refused() -> None:
    conn = SftpConnection(type="sftp", host="127.0.0.1", port=free_port(), user="u", password="p", timeout=5)
    assert "connection refused" in failure(conn)


def test_sftp_auth_failure_does_not_show_the_password(sshd: SshServer) -> None:
    message = failure(sshd.connection(key_file=None, password="pa55-w0rd"))
    assert "login failed" in message and "pa55-w0rd" not in message


def test_sftp_unknown_host_key(sshd: SshServer, tmp_path: Any) -> None:
    empty = tmp_path / "kh"
    empty.write_text("")
    assert "unknown host key SHA256:" in failure(sshd.connection(known_hosts=str(empty)))


def test_ftp_ok(ftp_server: FtpServer) -> None:
    assert check_connection("partner", ftp_server.connection()).startswith("logged in as alice (explicit TLS); /")


def test_ftp_plain_says_so(ftp_plain_server: FtpServer) -> None:
    assert "plain FTP, not encrypted" in check_connection("partner", ftp_plain_server.connection())


def test_ftp_dns_failure() -> None:
    conn = FtpConnection(type="ftp", host="no-such-host.invalid", timeout=5)
    assert 'cannot connect: cannot resolve host "no-such-host.invalid" (DNS: ' in failure(conn)


def test_ftp_refused() -> None:
    conn = FtpConnection(type="ftp", host="127.0.0.1", port=free_port(), timeout=5)
    assert "connection refused" in failure(conn)


def test_ftp_tls_not_trusted(ftp_server: FtpServer) -> None:
    assert "TLS certificate not trusted" in failure(ftp_server.connection(ca_file=None))


def test_ftp_tls_against_a_plain_server(ftp_plain_server: FtpServer) -> None:
    assert "TLS failed" in failure(ftp_plain_server.connection(tls="implicit", timeout=5))


def test_ftp_auth_failure(ftp_server: FtpServer) -> None:
    message = failure(ftp_server.connection(password="n0t-it"))
    assert "login failed for user alice" in message and "n0t-it" not in message


def test_ftp_permission_denied(ftp_server: FtpServer) -> None:
    assert "550" in failure(ftp_server.connection(user="nolist"))


def test_check_connection_of_a_type_without_probe() -> None:
    from ferryman.connections import PostgresConnection

    if "postgres" in PROBES:
        pytest.skip("a postgres probe exists")
    assert "no check for type 'postgres'" in failure(PostgresConnection(type="postgres", dsn="postgresql://x"))
