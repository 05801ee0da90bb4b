"""zip, gzip, gunzip and checksum steps: round trips, names, passwords, idempotence."""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import zipfile
from pathlib import Path

import pytest
import pyzipper

from ferryman.errors import PermanentError, UnsafeInput
from ferryman.steps.checksum import file_digest
from steps.harness import RunStep, tree
from support import require_binary


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    a, b = folder / "people.csv", folder / "notes.txt"
    a.write_text("id,name\n1,Ann\n")
    b.write_bytes(b"x" * 100_000)
    return [a, b]


def test_zip_then_unzip_round_trip(run_step: RunStep, inputs: list[Path]) -> None:
    zipped = run_step({"type": "zip", "name": "{meta.db}_export.zip"}, inputs, meta={"db": "bmgf"})
    assert zipped.files is not None and [p.name for p in zipped.files] == ["bmgf_export.zip"]
    with zipfile.ZipFile(zipped.files[0]) as zf:
        assert zf.namelist() == ["people.csv", "notes.txt"]
    unzipped = run_step({"type": "unzip"}, zipped.files)
    assert unzipped.files is not None
    assert [p.name for p in unzipped.files] == ["people.csv", "notes.txt"]
    assert [p.read_bytes() for p in unzipped.files] == [p.read_bytes() for p in inputs]


def test_zip_with_password_is_aes_256_and_unzip_reads_it(run_step: RunStep, inputs: list[Path]) -> None:
    zipped = run_step({"type": "zip", "password": "s3cret-pw"}, inputs)
    assert zipped.files is not None
    archive = zipped.files[0]
    with zipfile.ZipFile(archive) as zf:
        assert all(info.flag_bits & 1 for info in zf.infolist())
        assert all(info.compress_type == 99 for info in zf.infolist())  # WinZip AES marker
    with pyzipper.AESZipFile(archive) as zf:
        zf.setpassword(b"s3cret-pw")
        assert zf.read("people.csv") == inputs[0].read_bytes()
    out = run_step({"type": "unzip", "password": "s3cret-pw"}, [archive])
    assert out.files is not None and out.files[0].read_bytes() == inputs[0].read_bytes()
    with pytest.raises(PermanentError, match="wrong password") as info:
        run_step({"type": "unzip", "password": "nope"}, [archive])
    assert "nope" not in str(info.value)


def test_unzip_reads_zipcrypto_made_by_info_zip(run_step: RunStep, inputs: list[Path], tmp_path: Path) -> None:
    zip_bin = require_binary("zip")
    archive = tmp_path / "legacy.zip"
    subprocess.run([zip_bin, "-j", "-P", "pw123", str(archive), *map(str, inputs)], check=True, capture_output=True)
    out = run_step({"type": "unzip", "password": "pw123"}, [archive])
    assert out.files is not None and [p.read_bytes() for p in out.files] == [p.read_bytes() for p in inputs]


@pytest.mark.parametrize("method", ["deflate", "store"])
def test_zipcrypto_opens_with_info_zip_unzip_and_the_stdlib(run_step: RunStep, inputs: list[Path],
                                                             tmp_path: Path, method: str) -> None:
    unzip_bin = require_binary("unzip")
    zipped = run_step({"type": "zip", "password": "pw-Ümlaut 1", "encryption": "zipcrypto",
                       "method": method}, inputs)
    assert zipped.files is not None and zipped.outputs["encryption"] == "zipcrypto"
    archive = zipped.files[0]
    with zipfile.ZipFile(archive) as zf:  # the stdlib reads ZipCrypto (and checks every CRC)
        assert all(info.flag_bits & 1 and info.compress_type != 99 for info in zf.infolist())
        assert zf.read("notes.txt", pwd="pw-Ümlaut 1".encode()) == inputs[1].read_bytes()
        with pytest.raises(RuntimeError, match="Bad password"):
            zf.read("people.csv", pwd=b"wrong")
    out = tmp_path / "unzipped"
    done = subprocess.run([unzip_bin, "-P", "pw-Ümlaut 1", "-d", str(out), str(archive)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(out / p.name).read_bytes() for p in inputs] == [p.read_bytes() for p in inputs]
    wrong = subprocess.run([unzip_bin, "-o", "-P", "nope", "-d", str(tmp_path / "w"), str(archive)],
                           capture_output=True, text=True, check=False)
    assert wrong.returncode != 0 and "incorrect password" in wrong.stdout + wrong.stderr
    back = run_step({"type": "unzip", "password": "pw-Ümlaut 1"}, [archive])  # and our own unzip
    assert back.files is not None and [p.read_bytes() for p in back.files] == [p.read_bytes() for p in inputs]


def test_zip_encryption_without_password_is_a_config_error(run_step: RunStep, inputs: list[Path]) -> None:
    with pytest.raises(ValueError, match="encryption = 'zipcrypto' needs a password"):
        run_step({"type": "zip", "encryption": "zipcrypto"}, inputs)
    with pytest.raises(ValueError, match="'aes256' or 'zipcrypto'"):
        run_step({"type": "zip", "password": "x", "encryption": "des"}, inputs)


def test_unzip_keeps_subfolders_passes_other_files_and_drops_archive(run_step: RunStep, tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/b/deep.csv", "1,2\n")
        zf.writestr("dir/", "")
        zf.writestr("top.txt", "top")
    other = tmp_path / "readme.txt"
    other.write_text("hi")
    out = run_step({"type": "unzip"}, [archive, other])
    assert out.files is not None
    assert [p.name for p in out.files] == ["deep.csv", "top.txt", "readme.txt"]
    assert out.files[0].parent.name == "b" and out.files[2] == other
    kept = run_step({"type": "unzip", "keep_archive": True}, [archive])
    assert kept.files is not None and kept.files[-1] == archive
    assert archive.exists() and other.read_text() == "hi"


@pytest.mark.parametrize("method", ["store", "deflate", "bzip2", "lzma"])
def test_every_zip_method_round_trips(run_step: RunStep, inputs: list[Path], method: str) -> None:
    zipped = run_step({"type": "zip", "method": method, "level": 1}, inputs)
    assert zipped.files is not None
    out = run_step({"type": "unzip"}, zipped.files)
    assert out.files is not None and [p.read_bytes() for p in out.files] == [p.read_bytes() for p in inputs]


def test_tar_gz_and_tar(run_step: RunStep, inputs: list[Path], tmp_path: Path) -> None:
    for name, flag in (("x.tar.gz", "-czf"), ("x.tar", "-cf")):
        archive = tmp_path / name
        subprocess.run(["tar", flag, str(archive), "-C", str(inputs[0].parent), "people.csv", "notes.txt"],
                       check=True)
        out = run_step({"type": "unzip"}, [archive])
        assert out.files is not None
        assert sorted(p.name for p in out.files) == ["notes.txt", "people.csv"]


def test_gzip_then_gunzip(run_step: RunStep, inputs: list[Path]) -> None:
    packed = run_step({"type": "gzip", "level": 9}, inputs)
    assert packed.files is not None and [p.name for p in packed.files] == ["people.csv.gz", "notes.txt.gz"]
    assert gzip.decompress(packed.files[0].read_bytes()) == inputs[0].read_bytes()
    again = run_step({"type": "gzip", "level": 9}, inputs)
    assert again.files is not None and again.files[0].read_bytes() == packed.files[0].read_bytes()  # idempotent
    out = run_step({"type": "gunzip"}, packed.files)
    assert out.files is not None and [p.name for p in out.files] == ["people.csv", "notes.txt"]
    assert [p.read_bytes() for p in out.files] == [p.read_bytes() for p in inputs]


def test_gzip_name_template_must_be_a_plain_name(run_step: RunStep, inputs: list[Path]) -> None:
    with pytest.raises(UnsafeInput, match="not a plain file name"):
        run_step({"type": "gzip", "name": "{meta.x}.gz"}, inputs, meta={"x": "../../etc/passwd"})


def test_checksum_sidecars(run_step: RunStep, inputs: list[Path]) -> None:
    out = run_step({"type": "checksum", "include": ["*.csv"]}, inputs)
    assert out.files is not None and [p.name for p in out.files] == ["people.csv", "notes.txt", "people.csv.sha256"]
    digest = hashlib.sha256(inputs[0].read_bytes()).hexdigest()
    assert out.files[2].read_text() == f"{digest}  people.csv\n"
    assert file_digest(inputs[0]) == digest
    md5 = run_step({"type": "checksum", "algorithm": "md5"}, inputs)
    assert md5.files is not None and md5.files[-1].name == "notes.txt.md5"
    done = subprocess.run(["md5sum", "-c", md5.files[-1].name], cwd=md5.files[-1].parent, capture_output=True,
                          text=True, check=False)
    assert done.returncode != 0  # md5sum looks for notes.txt next to the sidecar: it is not in the work folder
    assert md5.files[-1].read_text().split()[0] == hashlib.md5(inputs[1].read_bytes()).hexdigest()


def test_nothing_outside_work_folder(run_step: RunStep, inputs: list[Path], tmp_path: Path) -> None:
    before = tree(inputs[0].parent)
    run_step({"type": "zip"}, inputs)
    run_step({"type": "gzip"}, inputs)
    assert tree(inputs[0].parent) == before


def test_checksum_refuses_colliding_sidecars(run_step: RunStep, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = tmp_path / "a" / "x.csv", tmp_path / "b" / "x.csv"
    one.write_text("1")
    two.write_text("2")
    with pytest.raises(PermanentError, match=r"two files are named 'x\.csv'"):
        run_step({"type": "checksum"}, [one, two])
