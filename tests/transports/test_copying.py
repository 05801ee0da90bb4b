"""Durable local copies: a file gets its name only once complete and fsynced, big files are written
back while they copy, and every failure is raised."""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.errors import PermanentError, TransientError
from ferryman.transports import copying, local
from ferryman.transports.local import LocalTransport

BIG = copying.OVERLAP_FROM + 5 * copying.CHUNK // 2  # several chunks and a partial last one


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        block = os.urandom(1024 * 1024)
        for n in range(BIG // len(block)):
            f.write(bytes([n % 256]) + block[1:])  # every MiB differs: a misplaced chunk shows
    return path


def test_big_file_is_copied_whole(big_file: Path, tmp_path: Path) -> None:
    LocalTransport().put(big_file, str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == big_file.read_bytes()


def test_chunks_reported_cover_the_file_in_order(big_file: Path, tmp_path: Path) -> None:
    chunks: list[tuple[int, int]] = []
    with open(big_file, "rb") as src, open(tmp_path / "copy.bin", "wb") as dst:
        copying.kernel_copy(src.fileno(), dst.fileno(), lambda offset, length: chunks.append((offset, length)))
    assert len(chunks) > 2
    assert [offset for offset, _ in chunks] == [sum(length for _, length in chunks[:n]) for n in range(len(chunks))]
    assert sum(length for _, length in chunks) == BIG


def test_without_sync_file_range_a_plain_fsync_is_used(big_file: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "_sync_file_range", None)
    LocalTransport().put(big_file, str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == big_file.read_bytes()


def test_a_writeback_error_is_raised_not_lost(big_file: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # sync_file_range consumes the error it reports, so a later fsync would succeed: the copy must fail.
    def failing(fd: int, offset: int, length: int, flags: int) -> int:
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(copying, "_sync_file_range", failing)
    target = tmp_path / "copy.bin"
    with pytest.raises(TransientError, match=f"cannot write {target}: Input/output error"):
        LocalTransport().put(big_file, str(target))


def test_a_file_system_without_sync_file_range_still_gets_a_durable_copy(
        big_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def unsupported(fd: int, offset: int, length: int, flags: int) -> int:
        calls.append(offset)
        ctypes.set_errno(errno.EINVAL)
        return -1

    monkeypatch.setattr(copying, "_sync_file_range", unsupported)
    LocalTransport().put(big_file, str(tmp_path / "copy.bin"))
    assert (tmp_path / "copy.bin").read_bytes() == big_file.read_bytes()
    assert calls == [0]  # asked once, then left to the closing fsync


def test_a_source_that_changes_while_it_is_copied_fails_the_copy(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "growing.csv").write_bytes(b"a,b\n" * 100)
    real = copying.kernel_copy

    def appended_meanwhile(in_fd: int, out_fd: int, copied: object = None) -> int:
        with open(tmp_path / "growing.csv", "ab") as f:  # the producer writes on while we copy
            f.write(b"1,2\n")
        return real(in_fd, out_fd)

    monkeypatch.setattr(copying, "kernel_copy", appended_meanwhile)
    target = tmp_path / "copy.csv"
    with pytest.raises(TransientError, match=f"cannot write {target}: copied 404 bytes of 400: the file changed"):
        LocalTransport().put(tmp_path / "growing.csv", str(target))
    assert not target.exists()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_big_file_on_a_full_disk_is_a_clear_transient_error_and_leaves_no_name(big_file: Path,
                                                                                 full_disk: Path) -> None:
    with pytest.raises(TransientError, match="no space left on device \\(disk full\\)"):
        LocalTransport().put(big_file, str(full_disk / "copy.bin"))
    assert os.listdir(full_disk) == []  # the partial copy never had a name


def test_put_replaces_a_leftover_under_the_name(tmp_path: Path) -> None:
    (tmp_path / "report.csv.in_progress").write_bytes(b"half of an earlier attempt, longer than the new one")
    (tmp_path / "new").write_bytes(b"complete")
    LocalTransport().put(tmp_path / "new", str(tmp_path / "report.csv.in_progress"))
    assert (tmp_path / "report.csv.in_progress").read_bytes() == b"complete"


@pytest.mark.parametrize("missing", ["O_TMPFILE on the file system", "/proc/self/fd"])
def test_without_nameless_files_the_file_is_written_under_its_name(
        missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "share"
    out.mkdir()
    if missing == "/proc/self/fd":
        monkeypatch.setattr(local, "_CAN_LINK", False)
    else:
        monkeypatch.setattr(local, "_NO_NAMELESS", {str(out)})
    (out / "x.csv").write_bytes(b"old and longer content")
    (tmp_path / "new").write_bytes(b"new")
    LocalTransport().put(tmp_path / "new", str(out / "x.csv"))
    assert (out / "x.csv").read_bytes() == b"new"


def test_a_missing_destination_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "new").write_bytes(b"new")
    with pytest.raises(PermanentError, match=f"cannot write {tmp_path / 'gone'}: No such file or directory"):
        LocalTransport().put(tmp_path / "new", str(tmp_path / "gone" / "x.csv"))
