"""Local folders (and mounted network shares)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from ferryman.errors import PermanentError, TransientError
from ferryman.transports.base import RemoteFile, Transport
from ferryman.transports.copying import copy_durably

# Errors that may clear up by themselves: full disk or quota, busy or flaky (network) file systems.
_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EAGAIN, errno.EBUSY, errno.EIO, errno.ETIMEDOUT,
              errno.ESTALE, errno.EINTR}


@contextmanager
def os_errors(action: str) -> Iterator[None]:
    """Map `OSError` to `TransientError` (full disk, busy) or `PermanentError` (permissions, missing)."""
    try:
        yield
    except OSError as exc:
        where = exc.filename or ""
        reason = exc.strerror or str(exc)
        if exc.errno == errno.ENOSPC:
            reason = "no space left on device (disk full)"
        message = f"{action} {where}: {reason}".replace("  ", " ")
        if exc.errno in _TRANSIENT:
            raise TransientError(message) from exc
        raise PermanentError(message) from exc


class _FolderSync:
    """fsync of folders, shared: one fsync covers every change made in the folder before it began.

    Many workers renaming into the same folder would each fsync it; instead a
    worker takes a ticket after its rename and waits for a fsync that began
    after that ticket — its own, or one already running for someone else
    (group commit, as the journal does for its rows).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._folders: dict[str, tuple[threading.Lock, list[int]]] = {}

    def sync(self, path: Path) -> None:
        ticket = next(self._tickets)
        with self._lock:
            folder_lock, covered = self._folders.setdefault(str(path), (threading.Lock(), [0]))
        with folder_lock:
            if covered[0] > ticket:
                return  # a fsync that began after our change has completed
            began = next(self._tickets)
            fsync_path(path, os.O_DIRECTORY)
            covered[0] = max(covered[0], began)


_FOLDER_SYNC = _FolderSync()

_KNOWN_FOLDERS: set[str] = set()
"""Folders known to exist (a delivery that finds one gone forgets it: see `forget_folder`)."""


def forget_folder(path: str) -> None:
    """Look at `path` again next time (it was removed under us)."""
    _KNOWN_FOLDERS.discard(path)


def make_durable(files: Iterable[Path], folder: Path, top: Path) -> None:
    """fsync `files` that lie under `folder`, then the folders from theirs up to `top`: a step's output
    must be on disk before the journal says the step is done, or after a power loss the next step
    would find an empty file and deliver it."""
    folders: set[Path] = set()
    with os_errors("cannot write"):
        for path in files:
            if folder not in path.parents:
                continue
            fsync_path(path)
            parent = path.parent
            while parent != top and top in parent.parents:
                folders.add(parent)
                parent = parent.parent
        if folders:
            folders.add(top)
        for path in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            fsync_dir(path)


def fsync_path(path: str | Path, flags: int = 0) -> None:
    """fsync the file (or, with O_DIRECTORY, the folder) at `path`."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_if_exists(path: str | Path) -> None:
    """Remove the file at `path`; one that is gone already is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in folder `path` durable."""
    _FOLDER_SYNC.sync(path)


class LocalTransport(Transport):
    """Files on this machine.

    `put` writes a nameless file (O_TMPFILE) in the destination folder, copies into it with the
    kernel, fsyncs it and only then links it under `path`: the name appears with complete, durable
    content or not at all.  Creating the file outside the folder's lock also lets several workers
    write small files into one folder at once (a named create holds the folder's lock while the file
    system allocates an inode; the other workers spin on it).  Deliveries still link a temporary name
    and rename it, so watchers of the destination see the usual create-and-move.  Where the file
    system has no O_TMPFILE (some network shares), the file is created under `path` directly.
    """

    put_checks_size: ClassVar[bool] = True

    def put(self, local: Path, path: str) -> None:
        folder = os.path.dirname(path)
        # Raw descriptors: no buffering, isatty or seek calls (each syscall is a GIL hand-off
        # among the workers; many small files make that the cost that matters).
        with os_errors("cannot write"), _forgetting_on_error(folder):
            src = os.open(local, os.O_RDONLY | os.O_CLOEXEC)
            try:
                dst = _open_nameless(folder)
                named = dst is None
                if dst is None:
                    dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    size, copied = copy_durably(src, dst, path)
                    if copied != size:  # the source changed while it was copied
                        raise OSError(errno.EIO, f"copied {copied} bytes of {size}: the file changed meanwhile", path)
                    if not named:
                        _link(dst, path)
                finally:
                    os.close(dst)
            finally:
                os.close(src)

    def get(self, path: str, local: Path) -> None:
        self.put(Path(path), str(local))

    def rename(self, src: str, dst: str) -> None:
        with os_errors("cannot rename"):
            os.replace(src, dst)
            fsync_dir(Path(dst).parent)

    def remove(self, path: str) -> None:
        with os_errors("cannot delete"):
            unlink_if_exists(path)

    def stat(self, path: str) -> RemoteFile | None:
        with os_errors("cannot stat"):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
        return RemoteFile(path, st.st_size, st.st_mtime)

    def list(self, path: str, recursive: bool = False) -> Iterator[RemoteFile]:
        with os_errors("cannot list"):
            for entry in os.scandir(path):
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        yield from self.list(entry.path, recursive=True)
                elif entry.is_file():
                    st = entry.stat()
                    yield RemoteFile(entry.path, st.st_size, st.st_mtime)

    def makedirs(self, path: str) -> None:
        """Create `path` and missing parents, each made durable in its parent (a dated folder made
        for a delivery must survive a power loss as the delivered file does)."""
        if path in _KNOWN_FOLDERS:
            return
        folder = Path(path)
        if folder.is_dir():
            _KNOWN_FOLDERS.add(path)
            return
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        with os_errors("cannot create folder"):
            os.makedirs(path, exist_ok=True)
            for created in reversed(missing):
                fsync_dir(created.parent)
        _KNOWN_FOLDERS.add(path)

    def checksum(self, path: str, algorithm: str = "sha256") -> str | None:
        with os_errors("cannot read"), open(path, "rb") as f:
            return hashlib.file_digest(f, algorithm).hexdigest()


@contextmanager
def _forgetting_on_error(folder: str) -> Iterator[None]:
    try:
        yield
    except OSError:
        forget_folder(folder)
        raise


_NO_NAMELESS: set[str] = set()
"""Folders whose file system refused O_TMPFILE."""

_CAN_LINK = hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")
"""A nameless file is linked through /proc (absent in some chroots): without it, named writes only."""


def _open_nameless(folder: str) -> int | None:
    """A new file in `folder` that has no name yet, or None where the file system cannot."""
    if not _CAN_LINK or folder in _NO_NAMELESS:
        return None
    try:
        return os.open(folder or ".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise OSError(exc.errno, exc.strerror, folder) from None
        _NO_NAMELESS.add(folder)
        return None


def _link(fd: int, path: str) -> None:
    """Give the nameless file `fd` the name `path`, replacing a file there (a leftover of an earlier
    attempt: a link cannot replace, so it goes first)."""
    me = f"/proc/self/fd/{fd}"
    for _ in range(3):
        try:
            # linkat(…, AT_SYMLINK_FOLLOW) links the file itself; CPython calls linkat only when given
            # a dir fd, so it gets one (`fd`: an absolute source path ignores it).
            os.link(me, path, src_dir_fd=fd, follow_symlinks=True)
            return
        except FileExistsError:
            unlink_if_exists(path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
    raise OSError(errno.EEXIST, "keeps being created by someone else", path)
