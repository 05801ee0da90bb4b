"""`TransportContract`: what every transport must do, run against every implementation.

A transport's test module subclasses `TransportContract` and provides two
fixtures:

* ``transport`` — a connected `Transport` (closed by the fixture afterwards);
* ``remote_root`` — a ``/``-separated folder path (or S3 ``bucket/prefix``),
  fresh and empty for each test, under which the test works.

Class attributes let an implementation say how large the streamed-transfer
file is and how much memory moving it may take.  Import it as
``from transports.contract import TransportContract`` (``tests/`` is on
``sys.path``).
"""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from pathlib import Path

import pytest

from ferryman.errors import PermanentError
from ferryman.transports.base import RemoteFile, Transport

MiB = 1024 * 1024


def join(root: str, *parts: str) -> str:
    """``root/part/part`` without doubled slashes."""
    return "/".join([root.rstrip("/"), *parts])


def relative(root: str, files: list[RemoteFile]) -> set[str]:
    """Listed paths relative to `root` (transports may or may not keep a leading slash)."""
    base = root.strip("/") + "/"
    out = set()
    for f in files:
        path = f.path.lstrip("/")
        assert path.startswith(base), f"{f.path!r} is not under {root!r}"
        out.add(path[len(base):])
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class TransportContract:
    """Behaviour every transport shares.  Subclasses provide `transport` and `remote_root`."""

    large_size = 12 * MiB + 12345
    """Size of the streamed-transfer test file."""

    max_transfer_memory = 4 * MiB
    """Peak Python heap while moving `large_size` bytes (streaming, not slurping)."""

    def test_put_then_get_gives_the_same_bytes(self, transport: Transport, remote_root: str,
                                               tmp_path: Path) -> None:
        data = os.urandom(100_000)
        target = join(remote_root, "a.bin")
        transport.put(write(tmp_path / "a.bin", data), target)
        transport.get(target, tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == data

    def test_put_replaces_an_existing_file(self, transport: Transport, remote_root: str,
                                           tmp_path: Path) -> None:
        target = join(remote_root, "a.txt")
        transport.put(write(tmp_path / "1", b"first version, longer"), target)
        transport.put(write(tmp_path / "2", b"second"), target)
        transport.get(target, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b"second"

    def test_empty_file(self, transport: Transport, remote_root: str, tmp_path: Path) -> None:
        target = join(remote_root, "empty.csv")
        transport.put(write(tmp_path / "e", b""), target)
        found = transport.stat(target)
        assert found is not None and found.size == 0
        transport.get(target, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b""

    def test_stat_tells_size_and_missing_is_none(self, transport: Transport, remote_root: str,
                                                 tmp_path: Path) -> None:
        target = join(remote_root, "s.txt")
        transport.put(write(tmp_path / "s", b"12345"), target)
        found = transport.stat(target)
        assert found is not None
        assert found.size == 5
        assert found.path.lstrip("/") == target.lstrip("/")
        assert transport.stat(join(remote_root, "missing.txt")) is None
        assert transport.stat(join(remote_root, "no-folder", "missing.txt")) is None

    def test_exists(self, transport: Transport, remote_root: str, tmp_path: Path) -> None:
        target = join(remote_root, "e.txt")
        assert not transport.exists(target)
        transport.put(write(tmp_path / "e", b"x"), target)
        assert transport.exists(target)

    def test_rename_replaces_the_target(self, transport: Transport, remote_root: str,
                                        tmp_path: Path) -> None:
        final = join(remote_root, "report.csv")
        temp = join(remote_root, "report.csv.in_progress")
        transport.put(write(tmp_path / "old", b"old content"), final)
        transport.put(write(tmp_path / "new", b"new content!"), temp)
        transport.rename(temp, final)
        assert transport.stat(temp) is None
        transport.get(final, tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == b"new content!"

    def test_rename_to_a_new_name(self, transport: Transport, remote_root: str,
                                  tmp_path: Path) -> None:
        transport.put(write(tmp_path / "a", b"abc"), join(remote_root, "a.part"))
        transport.rename(join(remote_root, "a.part"), join(remote_root, "a"))
        assert relative(remote_root, list(transport.list(remote_root))) == {"a"}

    def test_rename_of_a_missing_file_is_permanent(self, transport: Transport,
                                                   remote_root: str) -> None:
        with pytest.raises(PermanentError):
            transport.rename(join(remote_root, "nothing"), join(remote_root, "else"))

    def test_remove_and_remove_missing(self, transport: Transport, remote_root: str,
                                       tmp_path: Path) -> None:
        target = join(remote_root, "r.txt")
        transport.put(write(tmp_path / "r", b"r"), target)
        transport.remove(target)
        assert transport.stat(target) is None
        transport.remove(target)  # already gone: no error
        transport.remove(join(remote_root, "never-there.txt"))

    def test_get_of_a_missing_file_is_permanent(self, transport: Transport, remote_root: str,
                                                tmp_path: Path) -> None:
        with pytest.raises(PermanentError):
            transport.get(join(remote_root, "missing.bin"), tmp_path / "x")

    def test_list_flat_and_recursive(self, transport: Transport, remote_root: str,
                                     tmp_path: Path) -> None:
        src = write(tmp_path / "f", b"data")
        transport.makedirs(join(remote_root, "sub", "deeper"))
        for name in ("top1.csv", "top2.csv", "sub/mid.csv", "sub/deeper/low.csv"):
            transport.put(src, join(remote_root, name))
        flat = list(transport.list(remote_root))
        assert relative(remote_root, flat) == {"top1.csv", "top2.csv"}
        assert all(f.size == 4 for f in flat)
        deep = list(transport.list(remote_root, recursive=True))
        assert relative(remote_root, deep) == {
            "top1.csv", "top2.csv", "sub/mid.csv", "sub/deeper/low.csv"
        }

    def test_list_of_an_empty_folder(self, transport: Transport, remote_root: str) -> None:
        assert list(transport.list(remote_root)) == []
        assert list(transport.list(remote_root, recursive=True)) == []

    def test_makedirs_nested_with_dots_in_names(self, transport: Transport, remote_root: str,
                                                tmp_path: Path) -> None:
        # The ITRP monitor silently dropped folders whose names contain a dot.
        folder = join(remote_root, "v1.2", "exports.daily", "2024.01")
        transport.makedirs(folder)
        transport.makedirs(folder)  # again: no error
        transport.makedirs(join(remote_root, "v1.2"))  # a parent: no error
        transport.put(write(tmp_path / "d", b"dotted"), join(folder, "x.csv"))
        found = list(transport.list(remote_root, recursive=True))
        assert relative(remote_root, found) == {"v1.2/exports.daily/2024.01/x.csv"}

    def test_makedirs_then_put_many_levels(self, transport: Transport, remote_root: str,
                                           tmp_path: Path) -> None:
        folder = join(remote_root, "a", "b", "c", "d")
        transport.makedirs(folder)
        transport.put(write(tmp_path / "x", b"x"), join(folder, "x"))
        assert transport.exists(join(folder, "x"))

    def test_unicode_and_space_names(self, transport: Transport, remote_root: str,
                                     tmp_path: Path) -> None:
        folder = join(remote_root, "données été")
        transport.makedirs(folder)
        names = {"rapport é.csv", "日本語.txt", "naïve — ünïcode.zip"}
        for i, name in enumerate(sorted(names)):
            transport.put(write(tmp_path / f"u{i}", name.encode()), join(folder, name))
        listed = list(transport.list(folder))
        assert relative(folder, listed) == names
        transport.get(join(folder, "日本語.txt"), tmp_path / "back")
        assert (tmp_path / "back").read_bytes() == "日本語.txt".encode()
        transport.rename(join(folder, "日本語.txt"), join(folder, "ünï.txt"))
        assert transport.exists(join(folder, "ünï.txt"))

    def test_large_file_is_streamed(self, transport: Transport, remote_root: str,
                                    tmp_path: Path) -> None:
        src = tmp_path / "large.bin"
        with open(src, "wb") as f:
            for _ in range(self.large_size // MiB):
                f.write(os.urandom(MiB))
            f.write(os.urandom(self.large_size % MiB))
        target = join(remote_root, "large.bin")
        back = tmp_path / "back.bin"
        tracemalloc.start()
        try:
            transport.put(src, target)
            _, put_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            transport.get(target, back)
            _, get_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        found = transport.stat(target)
        assert found is not None and found.size == self.large_size
        assert digest(back) == digest(src)
        assert put_peak < self.max_transfer_memory, f"put held {put_peak} bytes"
        assert get_peak < self.max_transfer_memory, f"get held {get_peak} bytes"

    def test_checksum_when_offered_is_right(self, transport: Transport, remote_root: str,
                                            tmp_path: Path) -> None:
        src = write(tmp_path / "c", b"checksum me")
        target = join(remote_root, "c")
        transport.put(src, target)
        value = transport.checksum(target)
        assert value is None or value == digest(src)
