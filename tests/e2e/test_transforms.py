"""Transform steps end to end: the real `ferryman` command, folder → unzip → csv → deliver, with hostile
archives among good ones."""

from __future__ import annotations

import json
import shutil
import signal
import zipfile
from pathlib import Path

from support import ferryman, start_ferryman, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile"

CSV = 'id,name,notes\r\n1,"Doe, Jane","line 1\r\nline 2"\r\n2,Bob,"say ""hi"""\r\n'
EXPECTED = 'id;name;notes\r\n1;Doe, Jane;line 1 line 2\r\n2;Bob;"say ""hi"""\r\n'


def write_config(folder: Path) -> Path:
    config = folder / "ferryman.toml"
    config.write_text("""
[ferryman]
root = "state"
workers = 2
grace = "5s"

[flows.exports]
retry = { attempts = 1 }

[flows.exports.source]
type = "folder"
path = "in"
include = ["*.zip"]
after = "delete"
rescan = "1s"
settle = "200ms"

[[flows.exports.steps]]
type = "unzip"
max_size = "100MB"

[[flows.exports.steps]]
type = "csv"
output = { delimiter = ";" }
replace = [{ pattern = '\\r?\\n', with = " " }]

[[flows.exports.steps]]
type = "deliver"
to = "out"
""")
    (folder / "in").mkdir()
    return config


def good_zip(path: Path, member: str) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"export/{member}", CSV)


def test_good_archives_delivered_hostile_ones_failed_and_kept(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox = tmp_path / "in"
    for n in range(3):
        good_zip(inbox / f"good{n}.zip", f"people{n}.csv")
    hostile = ["zip_slip.zip", "symlink_member.zip", "bzip2_bomb.zip", "encrypted.zip", "truncated.zip"]
    for name in hostile:
        shutil.copyfile(CORPUS / name, inbox / name)

    done = ferryman("run", "--once", "-c", str(config), timeout=300)
    assert done.returncode == 1, done.stdout + done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [f"people{n}.csv" for n in range(3)]
    assert all((out / f"people{n}.csv").read_bytes() == EXPECTED.encode() for n in range(3))
    assert sorted(p.name for p in inbox.iterdir()) == sorted(hostile), "failed originals are kept, done ones deleted"
    assert not (tmp_path / "evil.txt").exists() and not tmp_path.parent.joinpath("evil.txt").exists()

    history = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    failed = [h for h in history if h["state"] == "failed"]
    messages = " ".join(str(h["error"]) for h in failed)
    assert len(failed) == len(hostile) and all("\n" not in str(h["error"]) for h in failed)
    for expected in ("climbs out of the folder", "is a symbolic link", "zip bomb", "is encrypted",
                     "not a valid zip archive"):
        assert expected in messages


def test_daemon_keeps_serving_after_a_hostile_archive(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    inbox, out = tmp_path / "in", tmp_path / "out"
    daemon = start_ferryman("run", "-c", str(config))
    try:
        wait_for(lambda: (tmp_path / "state" / "ferryman.pid").exists())
        shutil.copyfile(CORPUS / "bzip2_bomb.zip", inbox / "bomb.zip")
        shutil.copyfile(CORPUS / "zip_slip.zip", inbox / "slip.zip")
        good_zip(inbox / "later.zip", "later.csv")
        wait_for(lambda: (out / "later.csv").exists(), timeout=60)
        assert (out / "later.csv").read_bytes() == EXPECTED.encode()
        assert daemon.poll() is None, "the daemon is still running"
        good_zip(inbox / "after.zip", "after.csv")
        wait_for(lambda: (out / "after.csv").exists(), timeout=60)
        assert (inbox / "bomb.zip").exists() and (inbox / "slip.zip").exists()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
