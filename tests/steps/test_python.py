"""python step: functions, classes (once per flow), returned paths, errors kept as they are."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ferryman.errors import PermanentError, TransientError
from steps.harness import RunStep, build_step

MODULE = '''
from pathlib import Path
from ferryman.errors import TransientError

CALLS = []

def upper(path, suffix=".up", *, encoding="utf-8"):
    src = Path(path)
    out = Path.cwd() / "ignored"  # cwd is not the work folder; write next to nothing, return a path
    target = src.with_name(src.stem + suffix)
    return None if src.suffix == ".skip" else str(write(src, target, encoding))

def write(src, target, encoding):
    target.write_text(src.read_text(encoding=encoding).upper(), encoding=encoding)
    return target

def split(path, work):
    a, b = Path(work) / "a.txt", Path(work) / "b.txt"
    a.write_text("a"); b.write_text("b")
    return [a, b]

def flaky(path):
    raise TransientError("server busy")

def broken(path):
    raise KeyError("missing column")

def bad_return(path):
    return 42

def ghost(path):
    return "/nonexistent/file.csv"

class Counter:
    built = 0
    def __init__(self, start=0, *, step=1):
        Counter.built += 1
        self.n = start
        self.step = step
    def __call__(self, path, label):
        self.n += self.step
        CALLS.append((Path(path).name, label, self.n))

class WithConfig:
    def __init__(self, config):
        self.value = config.get("rattail.filemon", "monitor")
    def __call__(self, path):
        CALLS.append(("config", self.value))
'''


@pytest.fixture
def module(tmp_path: Path) -> str:
    folder = tmp_path / "actions"
    folder.mkdir()
    (folder / "ferry_actions_t.py").write_text(textwrap.dedent(MODULE))
    return "actions"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "a.csv"
    path.parent.mkdir()
    path.write_text("x,y\n")
    return path


def test_function_returning_a_path_replaces_the_file(run_step: RunStep, module: str, data: Path) -> None:
    result = run_step({"type": "python", "call": "ferry_actions_t:upper", "pythonpath": [module],
                       "args": [".upper"], "kwargs": {"encoding": "ascii"}}, [data])
    assert result.files is not None and [p.name for p in result.files] == ["a.upper"]
    assert result.files[0].read_text() == "X,Y\n" and data.read_text() == "x,y\n"


def test_list_of_paths_relative_to_the_work_folder(run_step: RunStep, module: str, data: Path,
                                                     tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    step2 = build_step({"type": "python", "call": "ferry_actions_t:split", "pythonpath": [module],
                        "args": [str(work)]}, tmp_path)
    result = run_step({}, [data], step=step2)
    assert result.files is not None and [p.name for p in result.files] == ["a.txt", "b.txt"]


def test_class_is_built_once_per_flow(run_step: RunStep, module: str, data: Path, tmp_path: Path) -> None:
    step = build_step({"type": "python", "call": "ferry_actions_t:Counter", "pythonpath": [module],
                       "init_args": [10], "init_kwargs": {"step": 5}, "args": ["L"]}, tmp_path)
    assert run_step({}, [data], step=step).files is None
    run_step({}, [data], step=step)
    import ferry_actions_t  # type: ignore[import-not-found]

    assert ferry_actions_t.Counter.built == 1
    assert ferry_actions_t.CALLS[-2:] == [("a.csv", "L", 15), ("a.csv", "L", 20)]


def test_class_with_rattail_config(run_step: RunStep, module: str, data: Path, tmp_path: Path) -> None:
    ini = tmp_path / "filemon.ini"
    ini.write_text("[rattail.filemon]\nmonitor = foo\n")
    step = build_step({"type": "python", "call": "ferry_actions_t:WithConfig", "pythonpath": [module],
                       "init": "config"}, tmp_path)
    step.flow.config_file = ini
    run_step({}, [data], step=step)
    import ferry_actions_t

    assert ferry_actions_t.CALLS[-1] == ("config", "foo")


def test_class_with_config_from_another_file(run_step: RunStep, module: str, data: Path, tmp_path: Path) -> None:
    (tmp_path / "rattail.conf").write_text("[rattail.filemon]\nmonitor = from-ini\n")
    step = build_step({"type": "python", "call": "ferry_actions_t:WithConfig", "pythonpath": [module],
                       "init": "config", "config_file": "rattail.conf"}, tmp_path)
    step.flow.config_file = tmp_path / "ferryman.toml"
    run_step({}, [data], step=step)
    import ferry_actions_t

    assert ferry_actions_t.CALLS[-1] == ("config", "from-ini")


def test_errors_keep_their_type(run_step: RunStep, module: str, data: Path) -> None:
    with pytest.raises(TransientError, match="server busy"):
        run_step({"type": "python", "call": "ferry_actions_t:flaky", "pythonpath": [module]}, [data])
    with pytest.raises(KeyError, match="missing column"):
        run_step({"type": "python", "call": "ferry_actions_t:broken", "pythonpath": [module]}, [data])


@pytest.mark.parametrize(("call", "message"), [
    ("ferry_no_such_module:f", "cannot import 'ferry_no_such_module'"),
    ("ferry_actions_t:nope", "has no 'nope'"),
    ("ferry_actions_t:bad_return", "returned int"),
    ("ferry_actions_t:ghost", "which is not a file"),
])
def test_permanent_errors(run_step: RunStep, module: str, data: Path, call: str, message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        run_step({"type": "python", "call": call, "pythonpath": [module]}, [data])


@pytest.mark.parametrize("call", ["ferry_actions_t:bad_return", "ferry_actions_t:ghost"])
def test_result_ignore_keeps_the_file(run_step: RunStep, module: str, data: Path, call: str) -> None:
    result = run_step({"type": "python", "call": call, "pythonpath": [module], "result": "ignore"}, [data])
    assert result.files is None
