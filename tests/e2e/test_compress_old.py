"""CIOC's nightly log compression and export culling as one scheduled flow, with the real `ferryman`."""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

from support import ferryman

DAY = 86400


def test_compress_old_logs_and_cull_old_exports(tmp_path: Path) -> None:
    logs, downloads = tmp_path / "logs", tmp_path / "download"
    logs.mkdir()
    downloads.mkdir()
    now = time.time()
    for day in range(10):
        path = logs / f"app-{day}.log"
        path.write_text(f"log of day -{day}\n" * 100)
        os.utime(path, (now - day * DAY - 60, now - day * DAY - 60))
        export = downloads / f"cic_{day}.zip"
        export.write_bytes(b"PK")
        os.utime(export, (now - day * 4 * DAY, now - day * 4 * DAY))
    (tmp_path / "ferryman.toml").write_text(f"""
[ferryman]
root = "state"

[flows.nightly.source]
type = "schedule"
cron = "0 2 * * *"

[[flows.nightly.steps]]
type = "compress_old"
path = "{logs}"
include = ["*.log"]
age = "6d"
name = "logs_{{now:%Y-%m-%d}}.zip"

[[flows.nightly.steps]]
type = "prune"
label = "cull exports"
path = "{downloads}"
include = ["cic_*.zip"]
keep = {{ within = "30d" }}
""")
    done = ferryman("run", "--once", "--now", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    (archive,) = logs.glob("logs_*.zip")
    with zipfile.ZipFile(archive) as zf:
        assert sorted(zf.namelist()) == [f"app-{d}.log" for d in (6, 7, 8, 9)]
        assert zf.read("app-9.log") == b"log of day -9\n" * 100
    assert sorted(p.name for p in logs.glob("*.log")) == [f"app-{d}.log" for d in range(6)]
    assert sorted(p.name for p in downloads.iterdir()) == [f"cic_{d}.zip" for d in range(8)]  # 0..28 days old
    (item,) = json.loads(ferryman("history", "--json", cwd=tmp_path, check=True).stdout)
    outputs = {s["name"]: s["outputs"] for s in item["steps"]}
    assert outputs["cull exports"]["deleted"] == ["cic_8.zip", "cic_9.zip"]
    assert sorted(outputs["compress_old"]["compressed"]) == [f"app-{d}.log" for d in (6, 7, 8, 9)]
    again = ferryman("run", "--once", "--now", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(list(logs.glob("logs_*.zip"))) == 1  # nothing old left: no second archive
