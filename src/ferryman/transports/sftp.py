"""SFTP over SSH (paramiko); the login and host-key checks live in `ferryman.transports.ssh`.

One `SftpTransport` is one SSH connection with one SFTP session, kept open
by the `TransportPool` and reused for every file (a thousand small files
cost a thousand requests, not a thousand logins).  An upload takes two round
trips whatever its size (OPEN; then WRITEs, FSTAT and CLOSE back to back)
and downloads read ahead, both with a bounded number of requests in
flight, so memory stays flat.  Connections that died while idle are
replaced at the next operation.

Every paramiko and socket exception is mapped in `SftpTransport.errors`:
login, host key, permission and missing-file problems are permanent;
dropped connections, timeouts and server-side failures are transient (the
pool then closes this transport and the next use reconnects).
"""

from __future__ import annotations

import errno
import stat as stat_mode
import struct
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import paramiko
from paramiko.sftp import (
    CMD_ATTRS,
    CMD_CLOSE,
    CMD_DATA,
    CMD_FSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    CMD_READ,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    int64,
)
from paramiko.sftp_attr import SFTPAttributes

from ferryman.connections import ConnectionConfig, SftpConnection
from ferryman.errors import FerrymanError, PermanentError, TransientError, one_line
from ferryman.secrets import mask
from ferryman.transports.base import NETWORK_ERRORS, RemoteFile, Transport, network_error
from ferryman.transports.ssh import fingerprint, ssh_login

WRITE_SIZE = 32 * 1024
"""Bytes per SFTP WRITE or READ request (the size every server accepts)."""

IN_FLIGHT = 64
"""WRITE (or READ) requests sent before waiting for the oldest answer (64 x 32 KiB = 2 MiB)."""

BATCH_BYTES = 256 * 1024
"""Requests are gathered up to this many bytes before they are written to the channel."""

_ATTRIBUTES: Any = SFTPAttributes
_WRITE_FLAGS = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC


class SftpTransport(Transport):
    """An open SFTP session on `conn` (connects in the constructor)."""

    def __init__(self, conn: SftpConnection) -> None:
        self.conn = conn
        self.where = f"sftp {conn.user}@{conn.host}:{conn.port}"
        self._secrets = [s.reveal() for s in (conn.password, conn.key_passphrase) if s is not None]
        self._ssh: paramiko.Transport | None = None
        self._known_dirs: set[str] = set()
        self._posix_rename = True
        self._just_written: tuple[str, RemoteFile] | None = None
        with self.errors("cannot connect"):
            self._connect()

    # -- connecting ---------------------------------------------------------------------------

    def _connect(self) -> None:
        self._ssh = ssh_login(self.conn, self.where)
        sftp = paramiko.SFTPClient.from_transport(self._ssh)
        if sftp is None:
            raise TransientError(f"{self.where}: the server did not open an SFTP session")
        self.sftp: paramiko.SFTPClient = sftp
        sftp.get_channel().settimeout(self.conn.timeout)  # type: ignore[union-attr]

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str, path: str = "") -> Iterator[None]:
        """Map paramiko and socket exceptions to `PermanentError` / `TransientError`."""
        what = f"{self.where}: {action}{' ' + path if path else ''}"
        self._just_written = None
        try:
            if self._ssh is not None and not self._alive():
                # The connection died while idle (server restart, idle timeout): log in again
                # rather than fail the operation.
                self.close()
                self._connect()
            yield
        except FerrymanError as exc:
            raise type(exc)(mask(str(exc), self._secrets)) from exc
        except paramiko.BadAuthenticationType as exc:
            allowed = ", ".join(exc.allowed_types) or "none"
            raise PermanentError(f"{what}: login refused; the server allows only: {allowed}") from None
        except paramiko.AuthenticationException:
            raise PermanentError(f"{what}: login failed for user {self.conn.user} (wrong password or key)") from None
        except paramiko.BadHostKeyException as exc:
            raise PermanentError(f"{what}: host key mismatch ({fingerprint(exc.key)})") from None
        except NETWORK_ERRORS as exc:
            raise network_error(exc, what, self.conn.host, self.conn.port, self.conn.timeout) from None
        except paramiko.SSHException as exc:
            reason = mask(one_line(exc), self._secrets)
            if not self._alive() or "dropped" in reason or "closed" in reason.lower():
                raise TransientError(f"{what}: connection lost ({reason})") from None
            raise PermanentError(f"{what}: {reason}") from None
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise PermanentError(f"{what}: no such file or folder") from None
            if exc.errno == errno.EACCES:
                raise PermanentError(f"{what}: permission denied") from None
            if exc.errno is not None or not self._alive() or "closed" in str(exc).lower():
                raise TransientError(f"{what}: connection lost ({one_line(exc)})") from None
            # SSH_FX_FAILURE: the server could not do it (full disk, quota, busy); may clear up.
            raise TransientError(f"{what}: the server reported a failure ({one_line(exc)}); "
                                 "full disk or quota?") from None

    def _alive(self) -> bool:
        """The SSH connection and the SFTP channel on it are both still open."""
        if self._ssh is None or not self._ssh.is_active():
            return False
        channel = self.sftp.get_channel() if hasattr(self, "sftp") else None
        return channel is None or not (channel.closed or channel.eof_received)

    # -- moving bytes -------------------------------------------------------------------------

    def put(self, local: Path, path: str) -> None:
        """Write `local` to `path` in two round trips: OPEN, then the WRITEs, an FSTAT and the CLOSE
        sent together (at most `IN_FLIGHT` writes unanswered), answers read in order.

        The FSTAT is the server's own account of the size it holds after the last write; a `stat`
        of `path` that comes right after (the ``deliver`` step's verification) is answered from it
        instead of asking again.  Any other call forgets it.
        """
        # paramiko's own SFTPFile waits for every write's answer before it sends CLOSE, sends each
        # request in its own SSH packet, and a stat after it is one more round trip: with a
        # thousand small files those packets and waits are most of the time spent.
        with self.errors("cannot upload to", path), open(local, "rb") as src:
            sftp: Any = self.sftp  # after errors(), which may have reconnected
            kind, msg = sftp._request(CMD_OPEN, path, _WRITE_FLAGS, SFTPAttributes())
            if kind != CMD_HANDLE:
                raise paramiko.SFTPError("expected a handle from OPEN")
            handle = msg.get_binary()
            batch = _Batch(sftp)
            closed = False
            try:
                pending: deque[int] = deque()
                offset = 0
                while chunk := src.read(WRITE_SIZE):
                    pending.append(batch.add(CMD_WRITE, handle, int64(offset), chunk))
                    offset += len(chunk)
                    if len(pending) > IN_FLIGHT:
                        batch.send()
                        sftp._read_response(pending.popleft())  # raises on an error status
                fstat = batch.add(CMD_FSTAT, handle)
                close = batch.add(CMD_CLOSE, handle)
                batch.send()
                closed = True
                while pending:
                    sftp._read_response(pending.popleft())
                kind, msg = sftp._read_response(fstat)
                if kind != CMD_ATTRS or msg is None:
                    raise paramiko.SFTPError("expected attributes from FSTAT")
                attrs = _ATTRIBUTES._from_msg(msg)
                sftp._read_response(close)
            except BaseException:
                if not closed and self._alive():
                    with suppress(Exception):
                        batch.send()
                        sftp._request(CMD_CLOSE, handle)
                raise
        self._just_written = (path, RemoteFile(path, attrs.st_size or 0, attrs.st_mtime))

    def get(self, path: str, local: Path) -> None:
        """Stream `path` to `local` with `IN_FLIGHT` READs outstanding, answers read in order.

        (paramiko's prefetch bounds the requests in flight but not the answers it keeps, so a
        slow disk lets a whole file pile up in memory.)
        """
        with self.errors("cannot download", path), open(local, "wb") as dst:
            sftp: Any = self.sftp  # after errors(), which may have reconnected
            kind, msg = sftp._request(CMD_OPEN, path, SFTP_FLAG_READ, SFTPAttributes())
            if kind != CMD_HANDLE:
                raise paramiko.SFTPError("expected a handle from OPEN")
            handle = msg.get_binary()
            try:
                self._read_into(sftp, handle, dst)
            finally:
                if self._alive():
                    sftp._request(CMD_CLOSE, handle)

    def _read_into(self, sftp: Any, handle: bytes, dst: BinaryIO) -> None:
        batch = _Batch(sftp)
        pending: deque[tuple[int, int, int]] = deque()  # request number, offset, length
        next_offset = 0
        at_end = False

        def ask(offset: int, length: int) -> None:
            pending.append((batch.add(CMD_READ, handle, int64(offset), length), offset, length))

        for _ in range(IN_FLIGHT):
            ask(next_offset, WRITE_SIZE)
            next_offset += WRITE_SIZE
        batch.send()
        while pending:
            number, offset, length = pending.popleft()
            try:
                kind, msg = sftp._read_response(number)
            except EOFError:  # the server's "end of file" status, for this and every later read
                at_end = True
                continue
            if kind != CMD_DATA or msg is None:
                raise paramiko.SFTPError("expected data from READ")
            data = msg.get_string()
            dst.seek(offset)
            dst.write(data)
            if len(data) < length:  # a short read: ask again for the rest of that range
                ask(offset + len(data), length - len(data))
            elif not at_end:
                ask(next_offset, WRITE_SIZE)
                next_offset += WRITE_SIZE
            batch.send()

    def rename(self, src: str, dst: str) -> None:
        with self.errors("cannot rename", f"{src} to {dst}"):
            if self._posix_rename:
                try:
                    self.sftp.posix_rename(src, dst)
                    return
                except OSError as exc:
                    if exc.errno is not None or "unsupported" not in str(exc).lower():
                        raise
                    self._posix_rename = False
            # Plain SFTP rename refuses to replace: remove the target first.
            with suppress(FileNotFoundError):
                self.sftp.remove(dst)
            self.sftp.rename(src, dst)

    def remove(self, path: str) -> None:
        with self.errors("cannot delete", path):
            try:
                self.sftp.remove(path)
            except FileNotFoundError:
                return

    def stat(self, path: str) -> RemoteFile | None:
        just_written = self._just_written
        if just_written is not None and just_written[0] == path:
            self._just_written = None
            return just_written[1]
        with self.errors("cannot stat", path):
            try:
                attrs = self.sftp.stat(path)
            except FileNotFoundError:
                return None
        return RemoteFile(path, attrs.st_size or 0, attrs.st_mtime)

    def list(self, path: str, recursive: bool = False) -> Iterator[RemoteFile]:
        with self.errors("cannot list", path):
            entries = self.sftp.listdir_attr(path)
        folders = []
        for entry in sorted(entries, key=lambda e: e.filename):
            full = str(PurePosixPath(path) / entry.filename)
            mode = entry.st_mode or 0
            if stat_mode.S_ISLNK(mode):
                with self.errors("cannot stat", full):
                    try:
                        entry = self.sftp.stat(full)  # follow the link
                    except FileNotFoundError:
                        continue  # dangling
                mode = entry.st_mode or 0
                if stat_mode.S_ISDIR(mode):
                    continue  # links to folders are not followed (they can loop)
            if stat_mode.S_ISDIR(mode):
                folders.append(full)
            elif stat_mode.S_ISREG(mode):
                yield RemoteFile(full, entry.st_size or 0, entry.st_mtime)
        if recursive:
            for folder in folders:
                yield from self.list(folder, recursive=True)

    def makedirs(self, path: str) -> None:
        folder = str(PurePosixPath(path))
        if folder in self._known_dirs or folder in ("/", ".", ""):
            return
        with self.errors("cannot create folder", folder):
            try:
                attrs = self.sftp.stat(folder)
            except FileNotFoundError:
                self.makedirs(str(PurePosixPath(folder).parent))
                try:
                    self.sftp.mkdir(folder)
                except OSError as exc:
                    # Someone else may have made it meanwhile; otherwise report why mkdir failed.
                    if not self._is_dir(folder):
                        raise exc from None
            else:
                if not stat_mode.S_ISDIR(attrs.st_mode or 0):
                    raise PermanentError(f"{self.where}: cannot create folder {folder}: a file has that name")
        self._known_dirs.add(folder)

    def _is_dir(self, path: str) -> bool:
        try:
            return stat_mode.S_ISDIR(self.sftp.stat(path).st_mode or 0)
        except FileNotFoundError:
            return False

    def close(self) -> None:
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None


class _Batch:
    """SFTP requests gathered and sent with one write to the channel (one SSH packet when small)."""

    def __init__(self, sftp: Any) -> None:
        self.sftp = sftp
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, kind: int, *args: Any) -> int:
        """Queue a request whose answer nobody else waits for; its request number is returned."""
        sftp = self.sftp
        msg = paramiko.Message()
        with sftp._lock:
            number: int = sftp.request_number
            sftp.request_number += 1
            sftp._expecting[number] = type(None)
        msg.add_int(number)
        for arg in args:
            if isinstance(arg, int64):
                msg.add_int64(arg)
            elif isinstance(arg, int):
                msg.add_int(arg)
            else:
                msg.add_string(arg)
        payload = msg.asbytes()
        self.parts.append(struct.pack(">IB", len(payload) + 1, kind) + payload)
        self.size += len(self.parts[-1])
        if self.size >= BATCH_BYTES:
            self.send()
        return number

    def send(self) -> None:
        if self.parts:
            self.sftp._write_all(b"".join(self.parts))
            self.parts.clear()
            self.size = 0


def open_sftp(conn: ConnectionConfig | None) -> Transport:
    """The ``sftp`` entry of `TRANSPORTS`."""
    if not isinstance(conn, SftpConnection):
        raise PermanentError("sftp:// needs a connection of type sftp")
    return SftpTransport(conn)
