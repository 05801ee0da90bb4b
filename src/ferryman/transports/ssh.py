"""SSH connections for SFTP: host keys checked against known_hosts or a pin, key or password login.

Kept apart from the SFTP transport so that the trust decisions (which server
key is acceptable, which credentials are tried in which order) read in one
place.  Errors are `PermanentError` with a one-line message prefixed by the
caller's `where`; paramiko's own exceptions are mapped by the caller.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import paramiko

from ferryman.connections import SftpConnection
from ferryman.errors import PermanentError


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:…`` as ``ssh-keygen -l`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def matches_pin(key: paramiko.PKey, pin: str) -> bool:
    """`pin` is ``ssh-ed25519 AAAA…`` (a known_hosts line's key part) or ``SHA256:…``."""
    pin = pin.strip()
    if pin.startswith("SHA256:"):
        return pin.rstrip("=") == fingerprint(key)
    parts = pin.split()
    if len(parts) < 2:
        return False
    try:
        blob = base64.b64decode(parts[1])
    except ValueError:
        return False
    return parts[0] == key.get_name() and blob == key.asbytes()


def ssh_login(conn: SftpConnection, where: str) -> paramiko.Transport:
    """A logged-in SSH connection to `conn`, its host key checked; `where` prefixes messages."""
    sock = socket.create_connection((conn.host, conn.port), timeout=conn.timeout)
    # Requests are pipelined: small packets must leave at once, not wait for the last ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ssh = paramiko.Transport(sock)
    try:
        ssh.banner_timeout = conn.timeout
        ssh.auth_timeout = conn.timeout
        ssh.start_client(timeout=conn.timeout)
        check_host_key(conn, ssh.get_remote_server_key(), where)
        authenticate(conn, ssh, where)
    except BaseException:
        ssh.close()
        raise
    ssh.set_keepalive(30)
    return ssh


def check_host_key(conn: SftpConnection, key: paramiko.PKey, where: str) -> None:
    """Refuse a server key that is not pinned by host_key or listed in known_hosts."""
    if not conn.check_host_key:
        return
    got = fingerprint(key)
    if conn.host_key:
        if matches_pin(key, conn.host_key):
            return
        raise PermanentError(
            f"{where}: host key {got} ({key.get_name()}) does not match the pinned host_key; "
            "if the server's key really changed, update host_key"
        )
    known_file = Path(conn.known_hosts or "~/.ssh/known_hosts").expanduser()
    known = paramiko.HostKeys()
    if known_file.exists():
        try:
            known.load(str(known_file))
        except (OSError, paramiko.SSHException) as exc:
            raise PermanentError(f"{where}: cannot read known_hosts {known_file}: {exc}") from None
    elif conn.known_hosts:
        raise PermanentError(f"{where}: known_hosts file {known_file} does not exist")
    name = conn.host if conn.port == 22 else f"[{conn.host}]:{conn.port}"
    entries = known.lookup(name)
    if entries is None:
        raise PermanentError(
            f"{where}: unknown host key {got} ({key.get_name()}) for {name}, not in "
            f"{known_file}; check it and add it there, or pin it with host_key"
        )
    expected = entries.get(key.get_name())
    if expected is None or expected.asbytes() != key.asbytes():
        pinned = fingerprint(expected) if expected is not None else "another key type"
        raise PermanentError(
            f"{where}: host key {got} ({key.get_name()}) does not match {known_file} "
            f"({pinned}); the server's key changed, or someone is in the middle"
        )


def authenticate(conn: SftpConnection, ssh: paramiko.Transport, where: str) -> None:
    """Public-key login with key_file, then password (or keyboard-interactive) login."""
    if conn.key_file is None and conn.password is None:
        raise PermanentError(f"{where}: set password or key_file for the connection")
    failure: Exception | None = None
    if conn.key_file is not None:
        key = load_key(conn, conn.key_file, where)
        try:
            ssh.auth_publickey(conn.user, key)
            return
        except paramiko.AuthenticationException as exc:
            failure = exc
    if conn.password is not None:
        password = conn.password.reveal()
        try:
            ssh.auth_password(conn.user, password)
            return
        except paramiko.BadAuthenticationType as exc:
            if "keyboard-interactive" not in exc.allowed_types:
                failure = exc
            else:
                ssh.auth_interactive(conn.user, lambda _t, _i, prompts: [password] * len(prompts))
                return
        except paramiko.AuthenticationException as exc:
            failure = exc
    assert failure is not None
    raise failure


def load_key(conn: SftpConnection, key_file: str, where: str) -> paramiko.PKey:
    """The private key in `key_file`, decrypted with key_passphrase when it is encrypted."""
    path = Path(key_file).expanduser()
    passphrase = conn.key_passphrase.reveal() if conn.key_passphrase else None
    try:
        secret = passphrase.encode() if passphrase else None
        return paramiko.PKey.from_path(path, password=secret)  # type: ignore[arg-type]  # wants bytes
    except FileNotFoundError:
        raise PermanentError(f"{where}: key_file {path} does not exist") from None
    except TypeError:  # cryptography's way of saying a passphrase is needed
        raise PermanentError(f"{where}: key_file {path} is encrypted; set key_passphrase") from None
    except paramiko.PasswordRequiredException:
        raise PermanentError(f"{where}: key_file {path} is encrypted; set key_passphrase") from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        reason = "wrong key_passphrase" if passphrase else str(exc)
        raise PermanentError(f"{where}: cannot load key_file {path}: {reason}") from None
