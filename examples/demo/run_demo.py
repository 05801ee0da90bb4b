"""`make demo`: drop a sample zip of CSV exports in the inbox and let ferryman carry it."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUN = HERE / "run"


def sample_zip(path: Path) -> None:
    people = [["id", "name", "note"], ["1", "Ada Lovelace", "first programmer"],
              ["2", "Grace Hopper", "said:\n\"it's easier to ask forgiveness\""],
              ["3", "Edsger Dijkstra", "shortest, paths"]]
    sites = [["site", "city"], ["HQ", "Montréal"], ["Lab", "Québec"]]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, rows in (("people-export.csv", people), ("sites-export.csv", sites)):
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            archive.writestr(name, buffer.getvalue())


def main() -> int:
    shutil.rmtree(RUN, ignore_errors=True)
    (RUN / "inbox").mkdir(parents=True)
    sample_zip(RUN / "inbox" / "daily-export.zip")
    print("dropped run/inbox/daily-export.zip (people-export.csv, sites-export.csv)")
    print("$ ferryman run --once -c examples/demo/ferryman.toml")
    done = subprocess.run([sys.executable, "-m", "ferryman", "run", "--once", "-q",
                           "-c", str(HERE / "ferryman.toml")], check=False)
    if done.returncode != 0:
        return done.returncode
    print("\ndelivered files:")
    for path in sorted((RUN / "outbox").rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(HERE.parent.parent)}  ({path.stat().st_size} bytes)")
    people = next((RUN / "outbox").rglob("people-export.csv"))
    print(f"\n{people.relative_to(HERE.parent.parent)}:")
    print(people.read_text(encoding="utf-8"))
    print("run it again: nothing is delivered twice —")
    subprocess.run([sys.executable, "-m", "ferryman", "run", "--once", "-q", "-c", str(HERE / "ferryman.toml")],
                   check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
