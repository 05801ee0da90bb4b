"""A Rattail File Monitor site on temp folders: action modules that log their calls, and `ferryman`.

The actions append one JSON line per call to ``calls.jsonl`` (action, path,
args, kwargs, whether the file existed), so tests check call order,
arguments, retries and the same-exception-type rule from the outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import ferryman, start_ferryman, wait_for

ACTIONS = '''
import json, os, shutil

LOG = os.environ["RATTAIL_TEST_LOG"]


def _calls():
    try:
        with open(LOG) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def _record(action, path, *args, **kwargs):
    entry = {"action": action, "path": path, "args": list(args), "kwargs": kwargs,
             "exists": os.path.exists(path)}
    with open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\\n")


def _attempt(action, path):
    return sum(1 for c in _calls() if c["action"] == action and c["path"] == path)


def process(path, *args, **kwargs):
    _record("process", path, *args, **kwargs)


def second(path, *args, **kwargs):
    _record("second", path, *args, **kwargs)


def archive(path, folder):
    _record("archive", path, folder)
    shutil.move(path, os.path.join(folder, os.path.basename(path)))


def delete(path):
    _record("delete", path)
    os.remove(path)


def remove_sibling(path, sibling):
    _record("remove_sibling", path, sibling)
    os.remove(os.path.join(os.path.dirname(path), sibling))


def fail(path, *args, **kwargs):
    _record("fail", path, *args, **kwargs)
    raise RuntimeError("cannot handle " + os.path.basename(path))


def fail_on(path, name):
    _record("fail_on", path, name)
    if os.path.basename(path) == name:
        raise RuntimeError("cannot handle " + name)


def flaky(path, failures):
    """Fails with OSError the first `failures` times for a file, then works."""
    attempt = _attempt("flaky", path) + 1
    _record("flaky", path, failures)
    if attempt <= int(failures):
        raise OSError("attempt %d failed" % attempt)


def changing(path):
    """ValueError, then KeyError: another exception type, so the retries stop there."""
    attempt = _attempt("changing", path) + 1
    _record("changing", path)
    raise (ValueError if attempt == 1 else KeyError)("attempt %d" % attempt)


class Processor:
    def __init__(self, config):
        _record("init", "-", config.get("rattail.filemon", "monitor"), config.get("site", "greeting"))

    def __call__(self, path, *args, **kwargs):
        _record("Processor", path, *args, **kwargs)
'''


@dataclass
class Site:
    """A temp folder with the action module, the call log and one config file at a time."""

    root: Path
    form: str  # "ini": run the rattail file; "toml": run what `ferryman convert` made of it

    def __post_init__(self) -> None:
        (self.root / "actions").mkdir(parents=True, exist_ok=True)
        (self.root / "actions" / "rtactions.py").write_text(ACTIONS, encoding="utf-8")
        self.log = self.root / "calls.jsonl"
        self.env = {"RATTAIL_TEST_LOG": str(self.log), "PYTHONPATH": str(self.root / "actions")}
        self.config: Path | None = None

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def drop(self, folder: Path, name: str, text: str = "data", mtime: float | None = None) -> Path:
        """Write a file (closed before returning), optionally with a given modification time."""
        path = folder / name
        path.write_text(text, encoding="utf-8")
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        return path

    def configure(self, ini: str) -> Path:
        """Write rattail.conf; with form "toml" convert it and use the TOML instead."""
        conf = self.root / "rattail.conf"
        conf.write_text(textwrap.dedent(ini), encoding="utf-8")
        self.config = conf
        if self.form == "toml":
            done = ferryman("convert", str(conf), env=self.env, check=True)
            converted = self.root / "ferryman.toml"
            converted.write_text(done.stdout, encoding="utf-8")
            self.config = converted
        return self.config

    def run(self, *args: str, expect: int | None = 0) -> subprocess.CompletedProcess[str]:
        assert self.config is not None
        done = ferryman(*args, "-c", str(self.config), env=self.env)
        if expect is not None:
            assert done.returncode == expect, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
        return done

    def once(self, expect: int = 0) -> subprocess.CompletedProcess[str]:
        return self.run("run", "--once", expect=expect)

    def start(self) -> subprocess.Popen[str]:
        assert self.config is not None
        return start_ferryman("run", "-c", str(self.config), env=self.env)

    def warnings(self) -> str:
        """What the conversion warned about: `check`'s warnings for the INI, the TOML's comments."""
        assert self.config is not None
        if self.form == "ini":
            return self.run("check").stderr
        return self.config.read_text(encoding="utf-8")

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line]

    def seen(self) -> list[tuple[str, str]]:
        """(action, file name) of every call, in order."""
        return [(c["action"], os.path.basename(c["path"])) for c in self.calls()]

    def wait_calls(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        wait_for(lambda: len(self.calls()) >= count, timeout=timeout)
        return self.calls()


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM a daemon, wait for it, and return what it logged."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err
