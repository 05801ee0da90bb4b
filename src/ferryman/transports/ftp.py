"""FTP and FTPS (ftplib): explicit TLS by default, implicit TLS, or plain FTP when asked.

With ``tls = "explicit"`` (the default) the control connection switches to
TLS with ``AUTH TLS`` before the password is sent and the data connections
are protected (``PROT P``); a server that does not offer TLS is an error
naming the opt-out rather than a silent downgrade.  ``tls = "implicit"``
speaks TLS from the first byte (port 990).  Transfers are binary and
passive by default.  Paths are absolute on the server; relative ones are
taken from the login folder.

Every ftplib, ssl and socket exception is mapped in `FtpTransport.errors`:
5xx replies are permanent (550 missing or not allowed, 552 quota exceeded,
530 login refused), 4xx replies (452 disk full, 421 closing) and broken
connections are transient.
"""

from __future__ import annotations

import builtins
import ftplib
import select
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from ferryman.connections import ConnectionConfig, FtpConnection
from ferryman.errors import FerrymanError, PermanentError, TransientError, one_line
from ferryman.secrets import mask
from ferryman.transports.base import RemoteFile, Transport, network_error
from ferryman.transports.ftps import ImplicitTlsFTP, TlsFTP, tls_context

CHUNK = 1024 * 1024
"""Bytes per read and send on the data connection."""

_UNKNOWN_COMMAND = ("500", "501", "502", "504")


class FtpTransport(Transport):
    """One logged-in FTP control connection (connects in the constructor)."""

    def __init__(self, conn: FtpConnection) -> None:
        self.conn = conn
        self.port = conn.port or (990 if conn.tls == "implicit" else 21)
        self.where = f"ftp {conn.user}@{conn.host}:{self.port}"
        self._secrets = [conn.password.reveal()] if conn.password is not None else []
        self._known_dirs: set[str] = set()
        self.security = {"explicit": "explicit TLS", "implicit": "implicit TLS"}.get(
            str(conn.tls), "plain FTP, not encrypted"
        )
        with self.errors("cannot connect"):
            self.ftp = self._login()
            self.home = self.ftp.pwd()

    def _login(self) -> ftplib.FTP:
        conn = self.conn
        ftp: ftplib.FTP
        if conn.tls == "implicit":
            ftp = ImplicitTlsFTP(context=tls_context(conn), timeout=conn.timeout)
        elif conn.tls == "explicit":
            ftp = TlsFTP(context=tls_context(conn), timeout=conn.timeout)
        else:
            ftp = ftplib.FTP(timeout=conn.timeout)
        try:
            ftp.connect(conn.host, self.port)
            if isinstance(ftp, ftplib.FTP_TLS) and conn.tls == "explicit":
                try:
                    ftp.auth()
                except ftplib.error_perm as exc:
                    raise PermanentError(
                        f"{self.where}: the server does not offer TLS ({one_line(exc)}); "
                        "set tls = false on the connection to use plain FTP"
                    ) from None
            password = conn.password.reveal() if conn.password is not None else ""
            try:
                ftp.login(conn.user, password)
            except ftplib.error_perm as exc:
                raise PermanentError(
                    f"{self.where}: login failed for user {conn.user} ({one_line(exc)})"
                ) from None
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(conn.passive)
            with suppress(ftplib.Error):  # UTF-8 is many servers' default anyway
                ftp.sendcmd("OPTS UTF8 ON")
            ftp.voidcmd("TYPE I")
        except BaseException:
            ftp.close()
            raise
        return ftp

    # -- errors -------------------------------------------------------------------------------

    @contextmanager
    def errors(self, action: str, path: str = "") -> Iterator[None]:
        """Map ftplib, ssl and socket exceptions to `PermanentError` / `TransientError`."""
        what = f"{self.where}: {action}{' ' + path if path else ''}"
        try:
            if hasattr(self, "ftp") and not self._alive():
                # The server closed the connection while it was idle (idle timeout, restart):
                # log in again rather than fail the operation.
                self.close()
                self.ftp = self._login()
            yield
        except FerrymanError as exc:
            raise type(exc)(mask(str(exc), self._secrets)) from exc
        except ftplib.error_perm as exc:
            raise PermanentError(f"{what}: {_describe_reply(one_line(exc))}") from None
        except ftplib.error_temp as exc:
            raise TransientError(f"{what}: {_describe_reply(one_line(exc))}") from None
        except (ftplib.error_reply, ftplib.error_proto) as exc:
            raise TransientError(f"{what}: unexpected reply {one_line(exc)!r}") from None
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"{what}: TLS certificate not trusted ({exc.verify_message}); "
                "set ca_file to the CA that signed it"
            ) from None
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as exc:
            raise TransientError(f"{what}: connection lost during TLS ({one_line(exc)})") from None
        except ssl.SSLError as exc:
            raise PermanentError(f"{what}: TLS failed ({exc.reason or one_line(exc)})") from None
        except (OSError, EOFError) as exc:
            raise network_error(exc, what, self.conn.host, self.port, self.conn.timeout) from None

    def _alive(self) -> bool:
        """False when the control connection is gone or has something unasked for to say
        (a ``421`` idle timeout, a close): a healthy idle connection is silent."""
        sock = self.ftp.sock
        if sock is None:
            return False
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    # -- moving bytes -------------------------------------------------------------------------

    def _abs(self, path: str) -> str:
        return path if path.startswith("/") else str(PurePosixPath(self.home) / path)

    def put(self, local: Path, path: str) -> None:
        with self.errors("cannot upload to", path), open(local, "rb") as src:
            self.ftp.voidcmd("TYPE I")
            data = self.ftp.transfercmd(f"STOR {self._abs(path)}")
            try:
                with data:
                    while chunk := src.read(CHUNK):
                        data.sendall(chunk)
                    if isinstance(data, ssl.SSLSocket):
                        data.unwrap()
            except OSError:
                # The server may have cut the data connection and said why (full disk, quota).
                self.ftp.voidresp()
                raise
            self.ftp.voidresp()

    def get(self, path: str, local: Path) -> None:
        with self.errors("cannot download", path), open(local, "wb") as dst:
            self.ftp.retrbinary(f"RETR {self._abs(path)}", dst.write, blocksize=CHUNK)

    def rename(self, src: str, dst: str) -> None:
        src, dst = self._abs(src), self._abs(dst)
        with self.errors("cannot rename", f"{src} to {dst}"):
            try:
                self.ftp.rename(src, dst)
            except ftplib.error_perm:
                # Some servers (IIS, FileZilla) refuse to overwrite: delete the target and retry.
                if self.stat(src) is None or self.stat(dst) is None:
                    raise
                self.ftp.delete(dst)
                self.ftp.rename(src, dst)

    def remove(self, path: str) -> None:
        with self.errors("cannot delete", path):
            try:
                self.ftp.delete(self._abs(path))
            except ftplib.error_perm:
                if self.stat(path) is not None:
                    raise

    def stat(self, path: str) -> RemoteFile | None:
        full = self._abs(path)
        with self.errors("cannot stat", path):
            self.ftp.voidcmd("TYPE I")  # SIZE is refused in ASCII mode by many servers
            try:
                size = self.ftp.size(full)
            except ftplib.error_perm as exc:
                if not str(exc).startswith(_UNKNOWN_COMMAND):
                    return None
                return self._stat_from_listing(full)
            if size is None:
                return self._stat_from_listing(full)
            return RemoteFile(path, size, self._mdtm(full))

    def _mdtm(self, full: str) -> float | None:
        try:
            reply = self.ftp.sendcmd(f"MDTM {full}")
        except ftplib.error_perm:
            return None
        return _parse_time(reply.split()[-1])

    def _stat_from_listing(self, full: str) -> RemoteFile | None:
        parent, name = str(PurePosixPath(full).parent), PurePosixPath(full).name
        try:
            entries = self._entries(parent)
        except ftplib.error_perm:
            return None
        for entry in entries:
            if entry.name == name and entry.is_file:
                return RemoteFile(full, entry.size, entry.mtime)
        return None

    def list(self, path: str, recursive: bool = False) -> Iterator[RemoteFile]:
        full = self._abs(path)
        with self.errors("cannot list", path):
            entries = sorted(self._entries(full), key=lambda e: e.name)
        folders = []
        for entry in entries:
            child = str(PurePosixPath(path) / entry.name)
            if entry.is_dir:
                folders.append(child)
            elif entry.is_file:
                yield RemoteFile(child, entry.size, entry.mtime)
        if recursive:
            for folder in folders:
                yield from self.list(folder, recursive=True)

    def names(self, path: str) -> Iterator[str]:
        """Names in folder `path` (files and folders), for `check --connect`."""
        for entry in self._entries(self._abs(path)):
            yield entry.name

    def _entries(self, full: str) -> builtins.list[_Entry]:
        """MLSD when the server has it, else NLST plus SIZE per name."""
        try:
            return [
                _Entry(name, facts.get("type", "").lower(), int(facts.get("size", 0) or 0),
                       _parse_time(facts["modify"]) if "modify" in facts else None)
                for name, facts in self.ftp.mlsd(full)
                if facts.get("type", "").lower() in ("file", "dir")
            ]
        except ftplib.error_perm as exc:
            if not str(exc).startswith(_UNKNOWN_COMMAND):
                raise
        found: builtins.list[_Entry] = []
        self.ftp.voidcmd("TYPE A")
        names = [PurePosixPath(n).name for n in self.ftp.nlst(full)]
        self.ftp.voidcmd("TYPE I")
        for name in names:
            if name in (".", ".."):
                continue
            child = str(PurePosixPath(full) / name)
            try:
                size = self.ftp.size(child)
                found.append(_Entry(name, "file", size or 0, self._mdtm(child)))
            except ftplib.error_perm:
                if self._is_dir(child):
                    found.append(_Entry(name, "dir", 0, None))
        return found

    def _is_dir(self, full: str) -> bool:
        try:
            self.ftp.cwd(full)
        except ftplib.error_perm:
            return False
        self.ftp.cwd(self.home)
        return True

    def makedirs(self, path: str) -> None:
        full = str(PurePosixPath(self._abs(path)))
        if full in self._known_dirs or full == "/":
            return
        with self.errors("cannot create folder", full):
            if not self._is_dir(full):
                # One level at a time, from the top: every name is sent whole, dots and all.
                self.makedirs(str(PurePosixPath(full).parent))
                try:
                    self.ftp.mkd(full)
                except ftplib.error_perm:
                    if not self._is_dir(full):  # made meanwhile by someone else is fine
                        raise
        self._known_dirs.add(full)

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            self.ftp.close()


class _Entry:
    __slots__ = ("mtime", "name", "size", "type")

    def __init__(self, name: str, type_: str, size: int, mtime: float | None) -> None:
        self.name, self.type, self.size, self.mtime = name, type_, size, mtime

    @property
    def is_file(self) -> bool:
        return self.type == "file"

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


def _parse_time(value: str) -> float | None:
    """``YYYYMMDDHHMMSS[.sss]`` (UTC, as MDTM and MLSD give it) to a timestamp."""
    try:
        whole, _, fraction = value.partition(".")
        moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction.isdigit() else 0.0)


def _describe_reply(reply: str) -> str:
    """The server's reply with what it means for the user."""
    code = reply[:3]
    meaning = {
        "530": "login refused",
        "550": "no such file or permission denied",
        "552": "storage quota exceeded",
        "553": "file name not allowed",
        "452": "remote disk full",
        "421": "the server is closing the connection",
        "425": "cannot open the data connection",
        "426": "the transfer was aborted",
    }.get(code)
    lowered = reply.lower()
    if code == "550" and ("permission" in lowered or "denied" in lowered or "not allowed" in lowered):
        meaning = "permission denied"
    elif code == "550" and ("no such" in lowered or "not found" in lowered or "not exist" in lowered):
        meaning = "no such file or folder"
    return f"{meaning} ({reply})" if meaning else reply


def open_ftp(conn: ConnectionConfig | None) -> Transport:
    """The ``ftp`` entry of `TRANSPORTS`."""
    if not isinstance(conn, FtpConnection):
        raise PermanentError("ftp:// needs a connection of type ftp")
    return FtpTransport(conn)

