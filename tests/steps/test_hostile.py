"""The hostile corpus (tests/data/hostile/): every file fails its item with a clear message, or is
handled correctly where the format allows; nothing is written outside the work folder; the original
is never changed."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest

from ferryman.errors import PermanentError, UnsafeInput
from ferryman.steps.csv.dialect import Dialect, Options
from steps.csv_reference import reference
from steps.harness import RunStep

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"


@pytest.fixture
def hostile(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Copy one corpus file into an input folder; check afterwards that only the work folder changed."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    copies: list[tuple[Path, str]] = []

    def copy(name: str) -> Path:
        target = inbox / name
        shutil.copyfile(CORPUS / name, target)
        copies.append((target, hashlib.sha256(target.read_bytes()).hexdigest()))
        return target

    yield copy
    for path, digest in copies:
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{path.name} was modified"
    outside = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")
                     if p.is_file() and "work" not in p.relative_to(tmp_path).parts)
    assert outside == sorted(f"in/{p.name}" for p, _ in copies), outside
    assert not Path("/tmp/ferryman-evil.txt").exists()
    assert not (tmp_path.parent / "evil.txt").exists()


@pytest.mark.parametrize(("name", "config", "error", "message"), [
    ("zip_slip.zip", {}, UnsafeInput, r"member '\.\./\.\./evil\.txt' climbs out of the folder"),
    ("zip_slip_backslash.zip", {}, UnsafeInput, "climbs out of the folder"),
    ("absolute_path.zip", {}, UnsafeInput, "has an absolute path"),
    ("symlink_member.zip", {}, UnsafeInput, "member 'passwd' is a symbolic link"),
    ("deflate_bomb.zip", {"max_ratio": 100}, UnsafeInput, "more than 100 times the archive's"),
    ("deflate_bomb.zip", {"max_size": "10MB"}, UnsafeInput, r"past max_size 9\.5 MiB"),
    ("bzip2_bomb.zip", {}, UnsafeInput, "compression ratio of a zip bomb"),
    ("nested_bomb.zip", {"recursive": True}, UnsafeInput, r"nested_bomb.zip → layer0.zip: member .zeros.bin."),
    ("encrypted.zip", {}, PermanentError, "the archive is encrypted .* set the step's password"),
    ("encrypted.zip", {"password": "wrong"}, PermanentError, "wrong password for member 'secret.csv'"),
    ("truncated.zip", {}, PermanentError, "not a valid zip archive"),
    ("tar_slip.tar.gz", {}, UnsafeInput, "climbs out of the folder"),
    ("tar_symlink.tar", {}, UnsafeInput, "member 'passwd' is a link"),
])
def test_hostile_archives_fail_cleanly(run_step: RunStep, hostile, name: str, config: dict[str, object],  # type: ignore[no-untyped-def]
                                       error: type[Exception], message: str) -> None:
    archive = hostile(name)
    with pytest.raises(error, match=message) as info:
        run_step({"type": "unzip", **config}, [archive])
    assert "\n" not in str(info.value)
    work = archive.parent.parent / "root" / "work" / "item1"
    assert not [p for p in work.rglob("*") if p.is_file()], "a refused archive leaves nothing in the work folder"


def test_nested_bomb_is_only_files_without_recursive(run_step: RunStep, hostile) -> None:  # type: ignore[no-untyped-def]
    result = run_step({"type": "unzip"}, [hostile("nested_bomb.zip")])
    assert result.files is not None and [p.name for p in result.files] == [f"layer{i}.zip" for i in range(8)]


def test_encrypted_with_the_right_password(run_step: RunStep, hostile) -> None:  # type: ignore[no-untyped-def]
    result = run_step({"type": "unzip", "password": "correct horse"}, [hostile("encrypted.zip")])
    assert result.files is not None and result.files[0].read_text() == "id,name\n1,Ann\n"


def test_gzip_bomb_stops(run_step: RunStep, tmp_path: Path) -> None:
    import gzip

    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as f:
        for _ in range(64):
            f.write(bytes(1 << 20))
    with pytest.raises(UnsafeInput, match=r"bomb\.csv\.gz: extraction stopped"):
        run_step({"type": "gunzip"}, [bomb])


# ---- CSV ---------------------------------------------------------------------------------------


def csv_step(name: str = "*.csv", **config: object) -> dict[str, object]:
    return {"type": "csv", "include": [name], "output": {"delimiter": ";"}, **config}


@pytest.mark.parametrize(("name", "message"), [
    ("unterminated_quote.csv", "unterminated_quote.csv: line 3: the file ends inside a quoted field"),
    ("invalid_utf8.csv", r"invalid_utf8.csv: line 3: bytes b'\\xff' are not valid utf-8"),
])
def test_malformed_csv_fails_with_the_line(run_step: RunStep, hostile, name: str, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermanentError, match=message):
        run_step(csv_step(), [hostile(name)])


def test_invalid_utf8_with_an_errors_policy(run_step: RunStep, hostile) -> None:  # type: ignore[no-untyped-def]
    result = run_step(csv_step(input={"errors": "replace"}), [hostile("invalid_utf8.csv")])
    assert result.files is not None and result.files[0].read_text().splitlines()[2] == "2;B\ufffdob"


@pytest.mark.parametrize("name", ["mixed_line_endings.csv", "nul_byte.csv"])
def test_odd_but_valid_csv_is_handled_like_the_csv_module(run_step: RunStep, hostile, name: str) -> None:  # type: ignore[no-untyped-def]
    path = hostile(name)
    result = run_step(csv_step(output={"delimiter": ";", "lineterminator": "\r\n"}), [path])
    with open(path, encoding="utf-8", newline="") as f:
        want = reference(f.read(), Options(output=Dialect(delimiter=";")))
    assert result.files is not None and result.files[0].read_bytes() == want.encode()


def test_a_million_columns(run_step: RunStep, tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    path.write_text(",".join(f"c{i % 10}" for i in range(1_000_000)) + "\r\n" + ",".join(["x"] * 1_000_000) + "\r\n")
    result = run_step(csv_step(output={"delimiter": ";", "lineterminator": "\r\n"}), [path])
    assert result.files is not None
    out = result.files[0].read_bytes()
    assert out.count(b";") == 2 * 999_999 and out.endswith(b"x\r\n")


def test_a_field_over_the_csv_modules_default_limit_is_fine(run_step: RunStep, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,notes\r\n1,\"" + "a" * 200_000 + "\"\r\n")
    result = run_step(csv_step(), [path])
    assert result.files is not None
    assert result.files[0].read_bytes() == b"id;notes\r\n1;" + b"a" * 200_000 + b"\r\n"


def test_a_field_over_max_field(run_step: RunStep, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("id,notes\r\n1,\"" + "a" * 200_000 + "\"\r\n")
    with pytest.raises(PermanentError, match=r"long.csv: line 2: row 2, column 2: a value of 200000 characters, "
                       r"over max_field \(131072;"):
        run_step(csv_step(max_field=131072), [path])


@pytest.mark.parametrize("quoted", [False, True])
def test_a_100_mb_single_field(run_step: RunStep, tmp_path: Path, quoted: bool) -> None:
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:
        f.write(b'id,blob\r\n1,' + (b'"' if quoted else b""))
        chunk = b"a" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b'"\r\n' if quoted else b"\r\n")
    with pytest.raises(PermanentError, match=r"huge.csv: line 2: (field larger than field limit|a line longer than)"):
        run_step(csv_step(), [path])


def test_reference_loop_agrees_on_the_corpus_csvs() -> None:
    """Sanity: the csv module itself accepts the 'valid' ones and the unterminated one (so we are stricter)."""
    for name in ("mixed_line_endings.csv", "nul_byte.csv", "unterminated_quote.csv"):
        with open(CORPUS / name, encoding="utf-8", newline="") as f:
            list(csv.reader(f))
