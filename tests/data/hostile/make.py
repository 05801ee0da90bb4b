"""Writes the small hostile files of this folder (committed); the big ones are made at test time.

    .venv/bin/python tests/data/hostile/make.py
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pyzipper

HERE = Path(__file__).parent


def zip_with(path: Path, members: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)


def zeros_member(zf: zipfile.ZipFile, name: str, size: int) -> None:
    info = zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0))
    info.compress_type = zf.compression
    with zf.open(info, "w", force_zip64=True) as out:
        block = bytes(1 << 20)
        for _ in range(size >> 20):
            out.write(block)


def main() -> None:
    zip_with(HERE / "zip_slip.zip", [("ok.txt", b"fine\n"), ("../../evil.txt", b"pwned\n")])
    zip_with(HERE / "zip_slip_backslash.zip", [("..\\..\\evil.txt", b"pwned\n")])
    zip_with(HERE / "absolute_path.zip", [("/tmp/ferryman-evil.txt", b"pwned\n")])
    with zipfile.ZipFile(HERE / "symlink_member.zip", "w") as zf:
        link = zipfile.ZipInfo("passwd", (2024, 1, 1, 0, 0, 0))
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../../../../etc/passwd")
        zf.writestr("after-link/passwd-copy.txt", "would write through the link")
    # a deflate bomb: 64 MiB of zeros in about 64 KiB (ratio ~1000)
    with zipfile.ZipFile(HERE / "deflate_bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zeros_member(zf, "zeros.bin", 64 << 20)
    # a bzip2 bomb: 4 GiB of zeros in a few KiB (ratio in the millions; one read would blow up memory)
    with zipfile.ZipFile(HERE / "bzip2_bomb.zip", "w", zipfile.ZIP_BZIP2) as zf:
        zeros_member(zf, "zeros.bin", 4 << 30)
    bomb = (HERE / "bzip2_bomb.zip").read_bytes()
    zip_with(HERE / "nested_bomb.zip", [(f"layer{i}.zip", bomb) for i in range(8)], zipfile.ZIP_STORED)
    with pyzipper.AESZipFile(HERE / "encrypted.zip", "w", compression=zipfile.ZIP_DEFLATED,
                             encryption=pyzipper.WZ_AES) as zf:
        zf.setpassword(b"correct horse")
        zf.writestr("secret.csv", "id,name\n1,Ann\n")
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.csv", "id,name\n" + "".join(f"{i},name {i}\n" for i in range(2000)))
    (HERE / "truncated.zip").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with tarfile.open(HERE / "tar_slip.tar.gz", "w:gz") as tf:
        data = b"pwned\n"
        info = tarfile.TarInfo("../../evil.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with tarfile.open(HERE / "tar_symlink.tar", "w") as tf:
        info = tarfile.TarInfo("passwd")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    (HERE / "unterminated_quote.csv").write_bytes(b'id,name,notes\r\n1,Ann,"fine"\r\n2,Bob,"never closed\r\n3,Cy,x\r\n')
    (HERE / "mixed_line_endings.csv").write_bytes(b'id,name\r\n1,Ann\n2,"B\r\nob"\r3,Cy\r\n')
    (HERE / "nul_byte.csv").write_bytes(b"id,name\r\n1,A\x00nn\r\n2,Bob\r\n")
    (HERE / "invalid_utf8.csv").write_bytes(b"id,name\r\n1,Ann\r\n2,B\xffob\r\n3,Cy\r\n")


if __name__ == "__main__":
    main()
