"""``compress_old`` on real folders: the archive, its read-back, crashes at each point, a full disk."""

from __future__ import annotations

import itertools
import os
import subprocess
import zipfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from ferryman.config import AnyStep
from ferryman.errors import TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps import STEPS, StepContext, StepResult
from ferryman.transports import TransportPool
from support import unavailable

NOW = datetime(2026, 11, 30, 3, 0)
_ids = itertools.count(1)


def run(config: dict[str, Any], tmp: Path) -> StepResult:
    model = TypeAdapter(AnyStep).validate_python({"type": "compress_old", "age": "6d", **config})
    flow = FlowContext(flow="t", root=tmp / "root", config_dir=tmp, connections={}, transports=TransportPool({}),
                       journal=None)  # type: ignore[arg-type]
    step = STEPS["compress_old"](model, flow)
    item = Item(id=f"i{next(_ids)}", flow="t", key="k", origin="test", meta={}, files=[])
    result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=tmp / "work", now=NOW))
    assert result is not None
    return result


def logs(folder: Path, days: range, size: int = 200) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for day in days:
        when = (NOW - timedelta(days=day)).timestamp()
        path = folder / f"access-{day:03d}.log"
        path.write_bytes(os.urandom(size))
        os.utime(path, (when, when))
        made[path.name] = path.read_bytes()
    return made


def archives(folder: Path) -> dict[str, dict[str, bytes]]:
    out = {}
    for path in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(path) as zf:
            out[path.name] = {name: zf.read(name) for name in zf.namelist()}
    return out


def test_old_files_go_into_a_dated_zip(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    made = logs(folder, range(10))
    done = run({"path": str(folder), "name": "logs_{now:%Y-%m-%d}.zip", "include": ["*.log"]}, tmp_path)
    old = {n for n in made if int(n[7:10]) > 6}
    assert archives(folder) == {"logs_2026-11-30.zip": {n: made[n] for n in old}}
    assert {p.name for p in folder.glob("*.log")} == set(made) - old
    assert sorted(done.outputs["compressed"]) == sorted(old) and done.files == [folder / "logs_2026-11-30.zip"]
    assert run({"path": str(folder), "name": "logs_{now:%Y-%m-%d}.zip"}, tmp_path).outputs["compressed"] == []


def test_a_second_archive_the_same_day_gets_a_number(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    logs(folder, range(7, 9))
    run({"path": str(folder)}, tmp_path)
    logs(folder, range(9, 11))
    run({"path": str(folder)}, tmp_path)
    assert set(archives(folder)) == {"archive_20261130.zip", "archive_20261130-1.zip"}
    assert not list(folder.glob("*.log"))


def test_a_crash_after_the_archive_before_the_deletions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next run deletes the originals it finds in the archive: no file lost, none archived twice."""
    folder = tmp_path / "logs"
    made = logs(folder, range(7, 12))
    real_unlink = Path.unlink
    calls = itertools.count()

    def crash_on_second(self: Path, missing_ok: bool = False) -> None:
        if self.suffix == ".log" and next(calls) == 1:
            raise KeyboardInterrupt("power cut")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        run({"path": str(folder)}, tmp_path)
    monkeypatch.undo()
    assert len(list(folder.glob("*.log"))) == 4  # one deleted before the cut
    done = run({"path": str(folder)}, tmp_path)
    assert sorted(done.outputs["already_archived"]) == sorted(made)[1:] and done.outputs["compressed"] == []
    assert archives(folder) == {"archive_20261130.zip": made}
    assert not list(folder.glob("*.log"))


def test_a_crash_while_writing_leaves_the_originals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "logs"
    made = logs(folder, range(7, 12))
    # what a SIGKILL in the middle of the zip leaves: a partial temporary archive
    (folder / ".ferryman-compress-archive_20261130.zip.in_progress").write_bytes(b"PK\x03\x04 partial")
    real_write = zipfile.ZipFile.write
    calls = itertools.count()

    def fail_third(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        if next(calls) == 2:
            raise OSError(5, "Input/output error")
        real_write(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", fail_third)
    with pytest.raises(TransientError, match="compress_old: cannot write"):
        run({"path": str(folder)}, tmp_path)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in folder.glob("*.log")} == made
    assert sorted(p.name for p in folder.iterdir()) == sorted(made)  # no temporary archive left either
    run({"path": str(folder)}, tmp_path)
    assert archives(folder) == {"archive_20261130.zip": made}


def test_a_file_written_to_while_archived_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "logs"
    logs(folder, range(7, 9))
    real_write = zipfile.ZipFile.write

    def append_then_write(self: zipfile.ZipFile, filename: Any, *args: Any, **kwargs: Any) -> None:
        with open(filename, "ab") as f:
            f.write(b"one more line\n")  # after its CRC was taken: the archive's copy differs
        real_write(self, filename, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "write", append_then_write)
    with pytest.raises(TransientError, match="changed while it was archived"):
        run({"path": str(folder)}, tmp_path)
    assert len(list(folder.glob("*.log"))) == 2 and not archives(folder)


def test_other_zips_are_not_touched(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    made = logs(folder, range(7, 9))
    with zipfile.ZipFile(folder / "theirs.zip", "w") as zf:
        for name, data in made.items():
            zf.writestr(name, data)  # same names and contents, but not one of ours
    os.utime(folder / "theirs.zip", (0, 0))
    run({"path": str(folder)}, tmp_path)
    assert set(archives(folder)) == {"theirs.zip", "archive_20261130.zip"}


def test_a_full_disk(tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        made = logs(folder, range(7, 10), size=60_000)  # random bytes: they do not compress
        with pytest.raises(TransientError, match="no space left on device"):
            run({"path": str(folder)}, tmp_path)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == made
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("config, message", [
    ({"age": "soon"}, "not a duration"), ({"name": "{nope}.zip"}, "nope"), ({"levels": 3}, "levels"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(AnyStep).validate_python({"type": "compress_old", "path": "/var/log/x", "age": "6d", **config})
