"""Safe extraction of zip, tar and gzip archives: shared by ``unzip`` and ``gunzip``.

Every member is checked before a byte is written, and bytes are counted as
they are written (header sizes are never trusted):

- names that would escape the target folder (absolute paths, drive letters,
  ``..``, backslash tricks, NUL bytes) are refused, as are symlinks, hard
  links, devices and FIFOs;
- an `ExtractionBudget` stops the extraction *before* the total written
  passes ``max_size`` or ``max_ratio`` times the archive's size, so a zip bomb
  never fills the disk; nested archives share the outer archive's budget;
- decompression is done in bounded slices (``max_length``), so even a
  bzip2 member with a ratio of a million cannot blow up memory.

Every refusal is an `UnsafeInput`; corrupt or truncated archives are a
`PermanentError` naming the archive and the member.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any, Protocol

from ferryman.errors import PermanentError, UnsafeInput
from ferryman.transports.local import os_errors
from ferryman.units import format_size

BUFFER = 1 << 20
"""Bytes read or produced per slice: large enough to stream at disk speed."""

RATIO_FLOOR = 1 << 20
"""`max_ratio` is only enforced past this many bytes: tiny archives of text legitimately compress well."""


@dataclass
class ExtractionBudget:
    """What an extraction may still write; shared by nested archives."""

    max_size: int
    max_ratio: float
    archive_size: int
    max_files: int
    written: int = 0
    files: int = 0

    def take(self, size: int, label: str) -> None:
        """Account for `size` more bytes; raise `UnsafeInput` before they would pass a limit."""
        total = self.written + size
        if total > self.max_size:
            raise UnsafeInput(
                f"{label}: extraction stopped at {format_size(self.written)}, past max_size "
                f"{format_size(self.max_size)} (a zip bomb or a larger archive than allowed)"
            )
        if total > RATIO_FLOOR and total > self.max_ratio * max(self.archive_size, 1):
            raise UnsafeInput(
                f"{label}: extraction stopped: more than {self.max_ratio:g} times the archive's "
                f"{format_size(self.archive_size)} (compression ratio of a zip bomb; raise max_ratio if expected)"
            )
        self.written = total

    def count_file(self, label: str) -> None:
        self.files += 1
        if self.files > self.max_files:
            raise UnsafeInput(f"{label}: more than max_files={self.max_files} members")


def member_path(root: Path, name: str, archive: str) -> Path:
    """Where member `name` goes under `root`; `UnsafeInput` when it would land anywhere else."""
    if "\x00" in name:
        raise UnsafeInput(f"{archive}: member name {name!r} holds a NUL byte")
    cleaned = name.replace("\\", "/")
    pure = PurePosixPath(cleaned)
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise UnsafeInput(f"{archive}: member {name!r} has an absolute path (refused)")
    parts = [p for p in pure.parts if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeInput(f"{archive}: member {name!r} climbs out of the folder with '..' (zip slip, refused)")
    if not parts:
        raise UnsafeInput(f"{archive}: member with an empty name {name!r}")
    target = root.joinpath(*parts)
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise UnsafeInput(f"{archive}: member {name!r} resolves outside the work folder (refused)")
    return target


class Reader(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


def write_member(chunks: Iterator[bytes], target: Path, budget: ExtractionBudget, label: str,
                 mtime: float | None = None) -> None:
    """Write `chunks` to a new file `target`, charging every chunk to `budget` before writing it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    budget.count_file(label)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    except FileExistsError:
        raise UnsafeInput(f"{label}: appears twice in the archive (or collides with another file)") from None
    with open(fd, "wb", buffering=0) as out:
        for chunk in chunks:
            budget.take(len(chunk), label)
            out.write(chunk)
    if mtime is not None:
        os.utime(target, (mtime, mtime))


def read_chunks(source: Reader, size: int = BUFFER) -> Iterator[bytes]:
    """Chunks of at most `size` bytes from a file-like object until EOF."""
    while chunk := source.read(size):
        yield chunk


@contextmanager
def archive_errors(archive: str) -> Iterator[None]:
    """Map what zipfile, tarfile, gzip and the codecs raise to one-line step errors."""
    try:
        with os_errors(f"{archive}: cannot extract"):
            yield
    except (PermanentError, UnsafeInput):
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise PermanentError(f"{archive}: not a valid zip archive (corrupt or truncated): {exc}") from None
    except tarfile.TarError as exc:
        raise PermanentError(f"{archive}: not a valid tar archive (corrupt or truncated): {exc}") from None
    except (gzip.BadGzipFile, zlib.error, lzma.LZMAError) as exc:
        raise PermanentError(f"{archive}: corrupt compressed data: {exc}") from None
    except EOFError as exc:
        raise PermanentError(f"{archive}: truncated archive: {exc}") from None
    except NotImplementedError as exc:
        raise PermanentError(f"{archive}: {exc}") from None


# ---- zip ----------------------------------------------------------------------------------


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    try:
        return datetime(*info.date_time).timestamp()
    except (ValueError, OverflowError):
        return None


def _decompressor(method: int, archive: str, name: str) -> Any:
    """A decompressor object (zlib, bz2 or lzma style) for a zip method; None for stored data."""
    if method == zipfile.ZIP_STORED:
        return None
    if method == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-15)
    if method == zipfile.ZIP_BZIP2:
        return bz2.BZ2Decompressor()
    if method == zipfile.ZIP_LZMA:
        return _ZipLzma()
    raise PermanentError(f"{archive}: member {name!r} uses compression method {method}, which is not supported")


class _ZipLzma:
    """LZMA as zip stores it (a small header, then raw LZMA1), with a bounded `decompress`."""

    def __init__(self) -> None:
        self._header = b""
        self._codec: Any = None
        self.eof = False

    @property
    def needs_input(self) -> bool:
        return self._codec is None or bool(self._codec.needs_input)

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._codec is None:
            self._header += data
            if len(self._header) < 4:
                return b""
            size = struct.unpack("<H", self._header[2:4])[0]
            if len(self._header) < 4 + size:
                return b""
            props = self._header[4 : 4 + size]
            data = self._header[4 + size :]
            filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
            self._codec = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters)
        out: bytes = self._codec.decompress(data, max_length)
        self.eof = self._codec.eof
        return out


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")
"""A zip local file header (APPNOTE 4.3.7), followed by the name and the extra field."""


def zip_member_chunks(f: IO[bytes], info: zipfile.ZipInfo, archive: str) -> Iterator[bytes]:
    """The decompressed bytes of an unencrypted member, in slices of at most `BUFFER`, CRC-checked.

    Reads the raw data after the local header itself, so every codec runs with
    a `max_length` (zipfile's own reader does not bound bzip2 or LZMA output).
    """
    name = info.filename
    f.seek(info.header_offset)
    header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size or not header.startswith(b"PK\x03\x04"):
        raise PermanentError(f"{archive}: member {name!r}: bad local header (corrupt archive)")
    fields = _LOCAL_HEADER.unpack(header)
    f.seek(fields[10] + fields[11], os.SEEK_CUR)  # file name and extra field lengths
    left = info.compress_size
    obj = _decompressor(info.compress_type, archive, name)
    truncated = f"{archive}: member {name!r} is truncated (compressed data ended early)"
    crc = 0
    if obj is None:
        while left > 0:
            out = f.read(min(BUFFER, left))
            if not out:
                raise PermanentError(truncated)
            left -= len(out)
            crc = zlib.crc32(out, crc)
            yield out
    else:
        streaming = hasattr(obj, "unconsumed_tail")  # zlib keeps unused input itself in unconsumed_tail
        data = b""
        produced = 0
        while not obj.eof:
            hungry = not data if streaming else obj.needs_input
            if hungry and left > 0:
                data = f.read(min(BUFFER, left))
                if not data:
                    raise PermanentError(truncated)
                left -= len(data)
            elif hungry and streaming:
                out = obj.flush()  # at most a window of pending output
                if out:
                    crc = zlib.crc32(out, crc)
                    yield out
                if not obj.eof:
                    raise PermanentError(truncated)
                break
            elif hungry:
                if produced == info.file_size:  # LZMA written without an end marker
                    break
                raise PermanentError(truncated)
            out = obj.decompress(data, BUFFER)
            data = obj.unconsumed_tail if streaming else b""
            produced += len(out)
            if out:
                crc = zlib.crc32(out, crc)
                yield out
    if crc != info.CRC:
        raise PermanentError(f"{archive}: member {name!r} fails its CRC check (corrupt archive)")


def _is_encrypted(info: zipfile.ZipInfo) -> bool:
    return bool(info.flag_bits & 0x1)


def _zip_kind(info: zipfile.ZipInfo) -> int:
    return stat.S_IFMT(info.external_attr >> 16)


def extract_zip(path: Path, root: Path, budget: ExtractionBudget, password: bytes | None,
                label: str) -> list[Path]:
    """Extract every member of zip `path` under `root`; the files written, in archive order."""
    written: list[Path] = []
    with archive_errors(label), zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        plan: list[tuple[zipfile.ZipInfo, Path]] = []
        for info in infos:  # check every name before writing anything
            kind = _zip_kind(info)
            if kind in (stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
                what = "a symbolic link" if kind == stat.S_IFLNK else "a special file"
                raise UnsafeInput(f"{label}: member {info.filename!r} is {what} (refused)")
            plan.append((info, member_path(root, info.filename, label)))
        encrypted = [i for i in infos if _is_encrypted(i)]
        if encrypted and password is None:
            raise PermanentError(
                f"{label}: the archive is encrypted (member {encrypted[0].filename!r}); "
                "set the step's password"
            )
        secure = _open_encrypted(path, password) if encrypted else None
        try:
            raw = zf.fp
            assert raw is not None
            for info, target in plan:
                member = f"{label}: member {info.filename!r}"
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if _is_encrypted(info):
                    assert secure is not None
                    chunks = _encrypted_chunks(secure, info, label)
                else:
                    chunks = zip_member_chunks(raw, info, label)
                write_member(chunks, target, budget, member, _zip_time(info))
                written.append(target)
        finally:
            if secure is not None:
                secure.close()
    return written


def _open_encrypted(path: Path, password: bytes | None) -> Any:
    import pyzipper

    zf = pyzipper.AESZipFile(path)
    zf.setpassword(password)
    return zf


def _encrypted_chunks(zf: Any, info: zipfile.ZipInfo, label: str) -> Iterator[bytes]:
    """Decrypted member bytes via pyzipper (ZipCrypto and WinZip AES); a wrong password is permanent."""
    try:
        handle = zf.open(info.filename)
    except RuntimeError as exc:
        if "password" in str(exc).lower():
            raise PermanentError(f"{label}: wrong password for member {info.filename!r}") from None
        raise PermanentError(f"{label}: cannot open member {info.filename!r}: {exc}") from None
    with handle:
        # small slices: pyzipper's reader does not bound bzip2/LZMA output per read
        size = BUFFER if info.compress_type in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) else 1 << 12
        while True:
            try:
                chunk = handle.read(size)
            except RuntimeError as exc:
                raise PermanentError(f"{label}: wrong password for member {info.filename!r}") from exc
            except zipfile.BadZipFile as exc:
                if "password" in str(exc).lower() or "hmac" in str(exc).lower():
                    raise PermanentError(f"{label}: wrong password for member {info.filename!r}") from None
                raise
            if not chunk:
                return
            yield chunk


# ---- tar and gzip -------------------------------------------------------------------------


def extract_tar(path: Path, root: Path, budget: ExtractionBudget, label: str) -> list[Path]:
    """Extract regular files and folders of tar `path` (plain, gz, bz2, xz) under `root`."""
    written: list[Path] = []
    with archive_errors(label), tarfile.open(path, "r:*") as tf:
        for member in tf:
            target = member_path(root, member.name, label)
            what = f"{label}: member {member.name!r}"
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if member.issym() or member.islnk():
                raise UnsafeInput(f"{what} is a link (refused)")
            if not member.isfile():
                raise UnsafeInput(f"{what} is a special file (refused)")
            source = tf.extractfile(member)
            assert source is not None
            write_member(read_chunks(source), target, budget, what, float(member.mtime))
            written.append(target)
    return written


def gunzip_name(path: Path) -> str:
    """The name of a ``.gz`` file's content: the name without ``.gz`` (the header's name is not trusted)."""
    name = path.name
    if name.lower().endswith(".tgz"):
        return name[:-4] + ".tar"
    return name[:-3] if name.lower().endswith(".gz") and len(name) > 3 else name + ".out"


def extract_gz(path: Path, root: Path, budget: ExtractionBudget, label: str) -> list[Path]:
    """Decompress gzip file `path` (all its members) to ``root/<name without .gz>``."""
    target = member_path(root, gunzip_name(path), label)
    with archive_errors(label), gzip.open(path, "rb") as source:
        write_member(read_chunks(source), target, budget, label, path.stat().st_mtime)
    return [target]
