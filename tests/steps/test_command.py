"""command step: argv templates, shell quoting, per item, env secrets, exit codes, timeouts, collect."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from ferryman.errors import PermanentError, StepTimeout, TransientError, UnsafeInput
from steps.harness import RunStep, build_step


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "report 2024.csv"
    path.parent.mkdir()
    path.write_text("a,b\n")
    return path


def test_argv_templates_and_cwd_and_collect(run_step: RunStep, csv_file: Path) -> None:
    result = run_step({"type": "command", "collect": True,
                       "command": ["sh", "-c", 'cp "$1" "$2.$3"; pwd > where', "x", "{path}", "{stem}", "{meta.v}"]},
                      [csv_file], meta={"v": "v2"})
    assert result.files is not None
    names = sorted(p.name for p in result.files)
    assert names == ["report 2024.v2", "where"]
    work = result.files[0].parent
    assert (work / "where").read_text().strip() == str(work)
    assert csv_file.read_text() == "a,b\n"


def test_without_collect_the_files_stay(run_step: RunStep, csv_file: Path) -> None:
    result = run_step({"type": "command", "command": ["true"]}, [csv_file])
    assert result.files is None and result.outputs["runs"] == 1


def test_per_item_expands_files(run_step: RunStep, csv_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "in" / "b.csv"
    other.write_text("x")
    result = run_step({"type": "command", "per": "item", "collect": True,
                       "command": ["sh", "-c", 'cat "$@" > all.txt', "x", "{files}"]}, [csv_file, other])
    assert result.files is not None and result.files[0].read_text() == "a,b\nx"
    assert result.outputs["runs"] == 1


def test_shell_mode_quotes_hostile_names(run_step: RunStep, tmp_path: Path) -> None:
    evil = tmp_path / "in" / "x; touch pwned; '$(id)'.csv"
    evil.parent.mkdir()
    evil.write_text("data")
    result = run_step({"type": "command", "shell": True, "collect": True, "command": "cp {path} copied.csv"},
                      [evil])
    assert result.files is not None and [p.name for p in result.files] == ["copied.csv"]
    assert not (result.files[0].parent / "pwned").exists()
    with pytest.raises(UnsafeInput, match="cannot be put inside"):
        run_step({"type": "command", "shell": True, "command": 'cat "{path}"'}, [evil])
    plain = tmp_path / "in" / "plain name.csv"
    plain.write_text("ok")
    quoted = run_step({"type": "command", "shell": True, "collect": True, "command": 'cp "{path}" out.csv'}, [plain])
    assert quoted.files is not None and quoted.files[0].read_text() == "ok"


def test_non_zero_exit_is_permanent_with_stderr_tail(run_step: RunStep, csv_file: Path) -> None:
    with pytest.raises(PermanentError, match=r"exited with 3: line 1 \| line 2 \| boom") as info:
        script = "echo line 1 >&2; echo line 2 >&2; echo boom >&2; exit 3"
        run_step({"type": "command", "command": ["sh", "-c", script]}, [csv_file])
    assert not isinstance(info.value, TransientError)


def test_retry_on_exit_is_transient(run_step: RunStep, csv_file: Path) -> None:
    with pytest.raises(TransientError, match="exited with 75"):
        run_step({"type": "command", "retry_on_exit": [75], "command": ["sh", "-c", "exit 75"]}, [csv_file])


def test_retry_on_exit_any(run_step: RunStep, csv_file: Path) -> None:
    with pytest.raises(TransientError, match="exited with 3"):
        run_step({"type": "command", "retry_on_exit": "any", "command": ["sh", "-c", "exit 3"]}, [csv_file])


def test_env_secret_reaches_the_program_but_not_the_message(run_step: RunStep, csv_file: Path) -> None:
    os.environ["FERRYMAN_TEST_TOKEN"] = "tok-123456"
    try:
        with pytest.raises(PermanentError) as info:
            run_step({"type": "command", "env": {"TOKEN": {"env": "FERRYMAN_TEST_TOKEN"}, "PLAIN": "p"},
                      "command": ["sh", "-c", 'echo "token is $TOKEN $PLAIN" >&2; exit 1']}, [csv_file])
    finally:
        del os.environ["FERRYMAN_TEST_TOKEN"]
    assert "tok-123456" not in str(info.value) and "token is *** p" in str(info.value)


def test_timeout_kills_the_whole_process_group(run_step: RunStep, csv_file: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    with pytest.raises(StepTimeout, match="killed"):
        run_step({"type": "command", "timeout": "300ms",
                  "command": ["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"]}, [csv_file])
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the background child of the timed-out command is still alive")


def test_missing_program(run_step: RunStep, csv_file: Path) -> None:
    with pytest.raises(PermanentError, match="program not found"):
        run_step({"type": "command", "command": ["no-such-program-xyz", "{path}"]}, [csv_file])


@pytest.mark.parametrize(("config", "message"), [
    ({"command": "echo hi"}, "give an argv list"),
    ({"command": []}, "command is empty"),
    ({"command": ["echo", "{nope}"]}, "unknown template field"),
    ({"command": ["echo"], "per": "dir"}, "per"),
])
def test_config_errors(tmp_path: Path, config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        build_step({"type": "command", **config}, tmp_path)


def test_shell_mode_files_are_each_quoted(run_step: RunStep, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    a, b = folder / "a b.csv", folder / "c'd.csv"
    a.write_text("1")
    b.write_text("2")
    result = run_step({"type": "command", "shell": True, "per": "item", "collect": True,
                       "command": "for f in {files}; do cat \"$f\"; done > all.txt"}, [a, b])
    assert result.files is not None and result.files[0].read_text() == "12"
    with pytest.raises(UnsafeInput, match="outside quotes"):
        run_step({"type": "command", "shell": True, "per": "item", "command": 'cat "{files}"'}, [a, b])
