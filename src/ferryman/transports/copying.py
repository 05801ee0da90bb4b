"""Durable local copies: the kernel copies, and a big file's pages go to disk while it is still copying.

A copy followed by `fsync` pays twice: once to copy into the page cache, once to write it all back.
For a big file ferryman hands each copied chunk to a writeback thread (`sync_file_range`), so the
disk writes the first chunks while the kernel copies the next ones; the closing `fsync` then finds
little left to do. Measured on a 1 GiB file: copy + fsync 0.44 s, overlapped 0.27 s, `cp` without
any fsync 0.23 s.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import threading
from collections.abc import Callable

OVERLAP_FROM = 32 * 1024 * 1024  # smaller files: one fsync is cheaper than a thread
CHUNK = 16 * 1024 * 1024
# SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER
_WRITE_AND_WAIT = 1 | 2 | 4
_UNSUPPORTED = {errno.EINVAL, errno.ESPIPE, errno.EOPNOTSUPP, errno.ENOSYS}


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):  # not Linux / not glibc or musl
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_sync_file_range = _load_sync_file_range()


def copy_durably(in_fd: int, out_fd: int, filename: str) -> tuple[int, int]:
    """Copy `in_fd` to `out_fd` and return once the copy is on disk (fsynced): (the source's size
    before, bytes copied).  They differ when the source changed meanwhile."""
    size = os.fstat(in_fd).st_size
    if _sync_file_range is None or size < OVERLAP_FROM:
        copied = kernel_copy(in_fd, out_fd)
        os.fsync(out_fd)
        return size, copied
    written: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
    failures: list[OSError] = []
    unsupported = False

    def write_back(sync_file_range: Callable[[int, int, int, int], int]) -> None:
        nonlocal unsupported
        while (chunk := written.get()) is not None:
            if failures or unsupported or sync_file_range(out_fd, chunk[0], chunk[1], _WRITE_AND_WAIT) == 0:
                continue
            code = ctypes.get_errno()
            if code in _UNSUPPORTED:  # a file system without it (some network shares): fsync does it all
                unsupported = True
            else:  # reported here, the error is no longer reported to fsync: it must be raised by us
                failures.append(OSError(code, os.strerror(code), filename))

    thread = threading.Thread(target=write_back, args=(_sync_file_range,), name="ferryman-writeback")
    thread.start()
    try:
        copied = kernel_copy(in_fd, out_fd, lambda offset, length: written.put((offset, length)))
    finally:
        written.put(None)
        thread.join()
    if failures:
        raise failures[0]
    os.fsync(out_fd)
    return size, copied


def kernel_copy(in_fd: int, out_fd: int, copied: Callable[[int, int], None] | None = None) -> int:
    """Copy with copy_file_range (in-kernel, no user-space buffer), falling back to sendfile;
    `copied(offset, length)` is called after each chunk.  Returns the bytes copied."""
    offset = 0
    try:
        while length := os.copy_file_range(in_fd, out_fd, CHUNK):
            if copied:
                copied(offset, length)
            offset += length
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
        offset = os.lseek(in_fd, 0, os.SEEK_CUR)
        size = os.fstat(in_fd).st_size
        while offset < size:
            length = os.sendfile(out_fd, in_fd, offset, CHUNK)
            if length == 0:
                break
            if copied:
                copied(offset, length)
            offset += length
    return offset
