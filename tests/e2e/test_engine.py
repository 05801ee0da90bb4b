"""Engine policies end to end: per-step retry, the same-error rule, timeouts, notifier digests and
recovery notices — through the real `ferryman` command with real Python actions written here."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

from support import ferryman

ACTIONS = '''
import json, os, time
from pathlib import Path

LOG = Path(os.environ["ACTION_LOG"])

def _log(**entry):
    with LOG.open("a") as f:
        f.write(json.dumps(entry) + "\\n")

def _calls(name, path):
    if not LOG.exists():
        return 0
    return sum(1 for line in LOG.read_text().splitlines()
               if json.loads(line)["action"] == name and json.loads(line)["file"] == os.path.basename(path))

def flaky(path, fails="2"):
    n = _calls("flaky", path)
    _log(action="flaky", file=os.path.basename(path), n=n)
    if n < int(fails):
        raise OSError(f"flaky failure {n}")

def changing(path):
    n = _calls("changing", path)
    _log(action="changing", file=os.path.basename(path), n=n)
    raise (OSError if n == 0 else ValueError)(f"changing failure {n}")

def slow(path):
    _log(action="slow", file=os.path.basename(path))
    time.sleep(5)

def after(path):
    _log(action="after", file=os.path.basename(path))

def broken(path):
    _log(action="broken", file=os.path.basename(path))
    if "bad" in os.path.basename(path):
        raise RuntimeError("bad input")
'''

NOTIFY = '''
import json, os, sys
with open(os.environ["NOTIFY_LOG"], "a") as f:
    f.write(json.dumps({"event": os.environ["FERRYMAN_EVENT"], "count": int(os.environ["FERRYMAN_COUNT"]),
                        "failures": json.load(sys.stdin)}) + "\\n")
'''


def setup(tmp_path: Path, steps: str, flow_extra: str = "", extra: str = "") -> tuple[Path, dict[str, str]]:
    (tmp_path / "actions.py").write_text(ACTIONS)
    (tmp_path / "notify.py").write_text(NOTIFY)
    (tmp_path / "in").mkdir()
    config = tmp_path / "ferryman.toml"
    config.write_text(textwrap.dedent(f"""
        [ferryman]
        root = "state"

        [notify.hook]
        type = "command"
        command = ["{sys.executable}", "{tmp_path / 'notify.py'}"]

        [flows.f]
        notify = ["hook"]
        retry = {{ attempts = 1 }}
        {flow_extra}

        [flows.f.source]
        type = "folder"
        path = "in"
        settle = "10ms"
        """) + textwrap.dedent(steps) + extra)
    env = {"ACTION_LOG": str(tmp_path / "actions.log"), "NOTIFY_LOG": str(tmp_path / "notify.log"),
           "PYTHONPATH": str(tmp_path)}
    return config, env


def calls(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "actions.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def notices(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "notify.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_step_retry_policy_overrides_the_flow_and_later_steps_run(tmp_path: Path) -> None:
    config, env = setup(tmp_path, """
        [[flows.f.steps]]
        type = "python"
        call = "actions:flaky"
        result = "ignore"
        retry = { attempts = 3, delay = "10ms" }

        [[flows.f.steps]]
        type = "python"
        call = "actions:after"
        result = "ignore"
        """)
    (tmp_path / "in" / "a.csv").write_text("x")
    done = ferryman("run", "--once", "-c", str(config), env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [(c["action"], c.get("n")) for c in calls(tmp_path)] == [
        ("flaky", 0), ("flaky", 1), ("flaky", 2), ("after", None)]
    assert notices(tmp_path) == []


def test_same_error_gives_up_when_the_error_type_changes(tmp_path: Path) -> None:
    config, env = setup(tmp_path, """
        [[flows.f.steps]]
        type = "python"
        call = "actions:changing"
        retry = { attempts = 5, delay = "10ms", same_error = true }
        """)
    (tmp_path / "in" / "a.csv").write_text("x")
    done = ferryman("run", "--once", "-c", str(config), env=env)
    assert done.returncode == 1
    assert [c["n"] for c in calls(tmp_path)] == [0, 1], "gave up at the first change of error type"
    assert "ValueError: changing failure 1" in done.stdout
    (notice,) = notices(tmp_path)
    assert notice["event"] == "failed" and notice["count"] == 1
    assert notice["failures"][0]["error"] == "ValueError: changing failure 1"
    assert notice["failures"][0]["attempts"] == 2


def test_timeout_fails_the_attempt_and_is_journaled(tmp_path: Path) -> None:
    config, env = setup(tmp_path, """
        [[flows.f.steps]]
        type = "python"
        call = "actions:slow"
        timeout = "300ms"
        """)
    (tmp_path / "in" / "a.csv").write_text("x")
    done = ferryman("run", "--once", "-c", str(config), env=env)
    assert done.returncode == 1
    assert "ran past its timeout of 300ms" in done.stdout
    (item,) = json.loads(ferryman("history", "--json", "-c", str(config), check=True).stdout)
    assert item["error_type"] == "StepTimeout" and item["steps"][0]["outcome"] == "failed"


def test_failures_are_told_once_each_then_digested_then_recovery(tmp_path: Path) -> None:
    config, env = setup(tmp_path, """
        [[flows.f.steps]]
        type = "python"
        call = "actions:broken"
        result = "ignore"
        """, flow_extra='notify_window = "2s"\nconcurrency = 1')
    for n, name in enumerate(("bad-1.csv", "bad-2.csv", "bad-3.csv", "good.csv")):
        (tmp_path / "in" / name).write_text(name)
        os.utime(tmp_path / "in" / name, (1_700_000_000 + n, 1_700_000_000 + n))  # arrival order
    assert ferryman("run", "--once", "-c", str(config), env=env).returncode == 1
    told = notices(tmp_path)
    assert [(n["event"], n["count"]) for n in told] == [("failed", 1), ("failed", 2), ("recovered", 0)], (
        "the first failure at once, the rest as one digest, then a recovery notice when good.csv succeeded")
    assert sorted(f["origin"].rsplit("/", 1)[-1] for n in told for f in n["failures"]) == [
        "bad-1.csv", "bad-2.csv", "bad-3.csv"]
