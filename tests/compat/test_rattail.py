"""Reading Rattail File Monitor INI files: rattail's parsing rules, checks, warnings, and `to_toml`."""

from __future__ import annotations

import textwrap
import tomllib
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ferryman import config as ferryman_config
from ferryman.compat import toml_writer as tw
from ferryman.compat.rattail import ini_to_raw, parse_list, read, to_toml
from ferryman.compat.rattail_config import FileConfig
from ferryman.compat.rattail_ini import command_line
from ferryman.errors import ConfigError


def write(folder: Path, body: str, name: str = "rattail.conf") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    return tmp_path / "inbox"


# ---- rattail's list syntax (every spelling in the File Monitor documentation) -------------


@pytest.mark.parametrize("value", [
    "foo, bar, baz",
    "foo,bar,baz",
    "foo bar baz",
    "\nfoo\nbar\nbaz",
    "\nfoo,\nbar baz",
    '"foo" \'bar\' baz',
])
def test_monitor_list_spellings(value: str) -> None:
    assert parse_list(value) == ["foo", "bar", "baz"]


@pytest.mark.parametrize(("value", "expected"), [
    ("/some/path/to/watch", ["/some/path/to/watch"]),
    ('"/some/path with spaces/to watch"', ["/some/path with spaces/to watch"]),
    ('/some/path/to/watch, "/another/path with spaces"', ["/some/path/to/watch", "/another/path with spaces"]),
    ('\n/some/path/to/watch\n"/another/path with spaces"', ["/some/path/to/watch", "/another/path with spaces"]),
    (r"C:\some\path\to\watch", [r"C:\some\path\to\watch"]),
    (r'"C:\some\path with spaces\to watch"', [r"C:\some\path with spaces\to watch"]),
    (r'C:\some\path\to\watch, "C:\another\path with spaces"',
     [r"C:\some\path\to\watch", r"C:\another\path with spaces"]),
    ("/some/other/path, 42, True", ["/some/other/path", "42", "True"]),
    ("a # a comment, as rattail's shlex reads it", ["a"]),
    ("", []),
])
def test_dirs_and_args_spellings(value: str, expected: list[str]) -> None:
    assert parse_list(value) == expected


def test_an_unclosed_quote_is_a_config_error(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = "{inbox}
        foo.actions = a
        foo.action.a.func = m:f
    """)
    with pytest.raises(ConfigError, match=r"foo\.dirs: No closing quotation"):
        read(path)


# ---- profiles ---------------------------------------------------------------------------


def test_a_profile_becomes_a_flow(tmp_path: Path, inbox: Path) -> None:
    (tmp_path / "with spaces").mkdir()
    path = write(tmp_path, """
        [rattail.filemon]
        monitor = foo
        foo.dirs = inbox, "with spaces"
        foo.actions = process
        foo.action.process.func = mypackage.mymodule:myprocessingfunc
    """)
    raw, warnings = ini_to_raw(path)
    assert warnings == []
    assert raw["ferryman"] == {"root": str(tmp_path / ".ferryman")}
    flow = raw["flows"]["foo"]
    assert flow["concurrency"] == 1 and flow["stop_on_error"] is False
    assert flow["source"] == {"type": "folder", "paths": [str(inbox), str(tmp_path / "with spaces")],
                              "ready": "auto", "existing": "process", "after": "keep"}
    assert flow["steps"] == [{"type": "python", "label": "process",
                              "call": "mypackage.mymodule:myprocessingfunc", "result": "ignore"}]


def test_only_listed_profiles_run_and_unlisted_ones_are_mentioned(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo, bar
        foo.dirs = {inbox}
        foo.actions = process
        foo.action.process.func = mypackage.mymodule:myprocessingfunc
        bar.dirs = {inbox}
        bar.actions = special
        bar.action.special.func = myothermodule:myspecialfunc
        baz.dirs = /some/other/path
        baz.actions = wtf
        baz.action.wtf.func = os:remove
    """)
    raw, warnings = ini_to_raw(path)
    assert list(raw["flows"]) == ["foo", "bar"]
    assert warnings == ["[rattail.filemon] options of 'baz' ignored: it is not listed in monitor"]


def test_missing_folders_are_dropped_and_empty_profiles_with_them(tmp_path: Path, inbox: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    path = write(tmp_path, r"""
        [rattail.filemon]
        monitor = foo bar quiet
        foo.dirs = inbox /no/such/folder a-file "C:\some\path with spaces"
        foo.actions = a
        foo.action.a.func = m:f
        bar.dirs = /no/such/folder
        bar.actions = a
        bar.action.a.func = m:f
        quiet.dirs = inbox
    """)
    raw, warnings = ini_to_raw(path)
    assert list(raw["flows"]) == ["foo"]
    assert raw["flows"]["foo"]["source"]["paths"] == [str(inbox)]
    assert warnings == [
        "profile 'foo': folder '/no/such/folder' does not exist (or cannot be seen by this user); dropped",
        f"profile 'foo': '{tmp_path / 'a-file'}' is not a folder; dropped",
        r"profile 'foo': 'C:\some\path with spaces' is a Windows path; dropped on this system",
        "profile 'bar': folder '/no/such/folder' does not exist (or cannot be seen by this user); dropped",
        "profile 'bar' has no folder to watch and is not run",
        "profile 'quiet' has no action to invoke and is not run",
    ]


def test_profile_switches(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = {inbox}
        foo.watch_locks = true
        foo.process_existing = false
        foo.stop_on_error = Yes
        foo.actions = a
        foo.action.a.func = m:f
    """)
    flow = ini_to_raw(path)[0]["flows"]["foo"]
    assert flow["stop_on_error"] is True
    assert flow["source"]["ready"] == "lock" and flow["source"]["lock_suffix"] == ".lock"
    assert flow["source"]["existing"] == "ignore"


@pytest.mark.parametrize(("value", "expected", "warned"), [
    ("true", True, False), ("YES", True, False), ("on", True, False), ("1", True, False),
    ("false", False, False), ("no", False, False), ("off", False, False), ("0", False, False),
    ("ture", False, True),
])
def test_booleans_read_like_rattail(tmp_path: Path, inbox: Path, value: str, expected: bool,
                                    warned: bool) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = {inbox}
        foo.stop_on_error = {value}
        foo.actions = a
        foo.action.a.func = m:f
    """)
    raw, warnings = ini_to_raw(path)
    assert raw["flows"]["foo"]["stop_on_error"] is expected
    assert bool(warnings) is warned
    if warned:
        assert warnings == [f"[rattail.filemon] foo.stop_on_error = '{value}' is not true/false; "
                            "read as false, as rattail did"]


# ---- actions ----------------------------------------------------------------------------


def _one_action(tmp_path: Path, inbox: Path, lines: str) -> Path:
    return write(tmp_path, f"[rattail.filemon]\nmonitor = foo\nfoo.dirs = {inbox}\nfoo.actions = a\n"
                 + textwrap.dedent(lines))


@pytest.mark.parametrize(("lines", "message"), [
    ("foo.action.a.args = x\n", r"action 'a': needs exactly one of foo\.action\.a\.func, foo\.action\.a\.class "
                                r"or foo\.action\.a\.cmd \(has none of them\)"),
    ("foo.action.a.func = m:f\nfoo.action.a.cmd = true\n",
     r"action 'a': needs exactly one of .* \(has foo\.action\.a\.func, foo\.action\.a\.cmd\)"),
    ("foo.action.a.func = m.f\n", r"action 'a': foo\.action\.a\.func = 'm\.f' is not 'module:name'"),
    ("foo.action.a.class = m:C:D\n", r"action 'a': foo\.action\.a\.class = 'm:C:D' is not 'module:name'"),
    ("foo.action.a.cmd = touch {path}\nfoo.action.a.args = x\n", r"a command action takes no foo\.action\.a\.args"),
    ("foo.action.a.cmd = echo {nope}\n", r"\{nope\} is not a field rattail filled in"),
    ("foo.action.a.func = m:f\nfoo.action.a.retry_attempts = three\n",
     r"foo\.action\.a\.retry_attempts = 'three': not a whole number"),
])
def test_action_errors_name_the_action(tmp_path: Path, inbox: Path, lines: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read(_one_action(tmp_path, inbox, lines))


def test_args_and_kwargs_mixed_kwargs_are_case_insensitive(tmp_path: Path, inbox: Path) -> None:
    path = _one_action(tmp_path, inbox, """
        foo.action.a.func = mymodule:my_processor_function
        foo.action.a.args = /some/other/path, "with space", 42
        foo.action.a.kwarg.something = /some/other/path
        foo.action.a.KWARG.Another = 42
        Foo.Action.A.kwarg.empty =
    """)
    step = ini_to_raw(path)[0]["flows"]["foo"]["steps"][0]
    assert step["args"] == ["/some/other/path", "with space", "42"]
    assert step["kwargs"] == {"something": "/some/other/path", "another": "42", "empty": ""}


def test_class_actions_are_built_with_the_config(tmp_path: Path, inbox: Path) -> None:
    path = _one_action(tmp_path, inbox, "foo.action.a.class = mypackage.mymodule:MyProcessorClass\n")
    step = ini_to_raw(path)[0]["flows"]["foo"]["steps"][0]
    assert step["call"] == "mypackage.mymodule:MyProcessorClass"
    assert step["init"] == "config" and step["config_file"] == str(path)


def test_retries_are_per_action_and_clamped(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = {inbox}
        foo.actions = a, b, c
        foo.action.a.func = m:a
        foo.action.a.retry_attempts = 3
        foo.action.a.retry_delay = 5
        foo.action.b.func = m:b
        foo.action.b.retry_attempts = 0
        foo.action.b.retry_delay = -1
        foo.action.c.func = m:c
        foo.action.retry_attempts = 3
    """)
    raw, warnings = ini_to_raw(path)
    a, b, c = raw["flows"]["foo"]["steps"]
    assert a["retry"] == {"attempts": 3, "delay": "5s", "backoff": 1.0, "same_error": True}
    assert "retry" not in b and "retry" not in c
    assert raw["flows"]["foo"]["retry"] == {"attempts": 1}
    assert warnings == [
        "[rattail.filemon] foo.action.b.retry_attempts = 0 is below the minimum; 1 is used",
        "[rattail.filemon] foo.action.b.retry_delay = -1 is below the minimum; 0 is used",
        "[rattail.filemon] unknown option 'foo.action.retry_attempts' ignored; "
        "retries are per action: foo.action.<name>.retry_attempts",
    ]


def test_unknown_options_are_named(tmp_path: Path, inbox: Path) -> None:
    path = _one_action(tmp_path, inbox, """
        foo.action.a.func = m:f
        foo.action.a.retries = 3
        foo.action.b.func = m:g
        foo.dir = /tmp
    """)
    assert ini_to_raw(path)[1] == [
        "[rattail.filemon] unknown option 'foo.action.a.retries' ignored; is that action listed in foo.actions?",
        "[rattail.filemon] unknown option 'foo.action.b.func' ignored; is that action listed in foo.actions?",
        "[rattail.filemon] unknown option 'foo.dir' ignored",
    ]


@pytest.mark.parametrize(("cmd", "shell", "expected"), [
    ("mv {path} /srv/done/{filename}", None, (True, "mv {path} /srv/done/{name}")),
    ("echo {{literal}} {path!r}", "true", (True, "echo {{literal}} {path!r}")),
    ('cp {path} "/srv/with space/{filename}.{x}"', "false",
     (False, ["cp", "{path}", "/srv/with space/{name}.{{x}}"])),
])
def test_commands(cmd: str, shell: str | None, expected: tuple[bool, object]) -> None:
    assert command_line(cmd, shell) == expected


def test_command_action_steps(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = {inbox}
        foo.actions = a, b
        foo.action.a.cmd = gzip -k {{path}}
        foo.action.b.cmd = cp {{path}} /tmp/{{filename}}
        foo.action.b.kwarg.shell = false
        foo.action.b.kwarg.other = 1
    """)
    raw, warnings = ini_to_raw(path)
    assert raw["flows"]["foo"]["steps"] == [
        {"type": "command", "label": "a", "command": "gzip -k {path}", "shell": True},
        {"type": "command", "label": "b", "command": ["cp", "{path}", "/tmp/{name}"]},
    ]
    assert warnings == ["[rattail.filemon] profile 'foo', action 'b': a command action only reads "
                        "kwarg.shell; kwarg.other ignored, as rattail did"]


# ---- the file as a whole ----------------------------------------------------------------


def test_no_monitor_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no 'monitor' option"):
        read(write(tmp_path, "[rattail.filemon]\nfoo.dirs = /tmp\n"))
    with pytest.raises(ConfigError, match="has no 'monitor' option"):
        read(write(tmp_path, "[rattail.filemon]\nmonitor =\n"))


def test_legacy_monitored_syntax(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.filemon]
        monitored = foo, bar
        foo.dirs = ['{inbox}', '/no/such/folder']
        foo.actions = ['mymodule:first', ('mymodule:second', 'a', 'b c')]
        foo.locks = true
        bar.dirs = ['{inbox}']
    """)
    raw, warnings = ini_to_raw(path)
    flow = raw["flows"]["foo"]
    assert flow["source"]["paths"] == [str(inbox)] and flow["source"]["ready"] == "lock"
    assert flow["steps"] == [
        {"type": "python", "label": "1-first", "call": "mymodule:first", "result": "ignore"},
        {"type": "python", "label": "2-second", "call": "mymodule:second", "result": "ignore", "args": ["a", "b c"]},
    ]
    assert list(raw["flows"]) == ["foo"]
    assert "profile 'bar' has no action to invoke and is not run" in warnings
    assert warnings[0].startswith("[rattail.filemon] uses the legacy 'monitored' syntax")
    bad = write(tmp_path, """
        [rattail.filemon]
        monitored = foo
        foo.dirs = [os.getcwd()]
        foo.actions = [('mymodule:f', 42)]
    """)
    with pytest.raises(ConfigError) as caught:
        read(bad)
    assert caught.value.problems == [
        "[rattail.filemon] foo.dirs: not a Python list literal (ferryman does not run code from config files)",
        "[rattail.filemon] foo.actions: ('mymodule:f', 42) is not 'module:function' or a tuple of it "
        "and string arguments",
    ]


def test_includes_interpolation_and_root(tmp_path: Path, inbox: Path) -> None:
    write(tmp_path, """
        [rattail]
        workdir = %(here)s/work

        [rattail.filemon]
        foo.actions = a
        foo.action.a.func = m:f
        foo.action.a.kwarg.pct = 100%%
    """, "base.conf")
    path = write(tmp_path, """
        [rattail.config]
        include = %(here)s/base.conf

        [rattail.filemon]
        monitor = foo
        foo.dirs = %(here)s/inbox
    """)
    raw, _ = ini_to_raw(path)
    assert raw["ferryman"]["root"] == str(tmp_path / "work" / "ferryman")
    assert raw["flows"]["foo"]["source"]["paths"] == [str(inbox)]
    assert raw["flows"]["foo"]["steps"][0]["kwargs"] == {"pct": "100%"}


def test_a_ferryman_section_sets_ferryman_settings(tmp_path: Path, inbox: Path) -> None:
    path = _one_action(tmp_path, inbox, "foo.action.a.func = m:f\n[ferryman]\nroot = state\nworkers = 2\n")
    assert ini_to_raw(path)[0]["ferryman"] == {"root": str(tmp_path / "state"), "workers": 2}


def test_not_an_ini_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read(write(tmp_path, "monitor = foo\n[rattail.filemon]\n"))


# ---- ferryman convert -------------------------------------------------------------------


def _full_example(tmp_path: Path, inbox: Path) -> Path:
    (tmp_path / 'odd "name" \\ here').mkdir()
    return write(tmp_path, r"""
        [rattail.filemon]
        monitor = foo, "the bar"
        foo.dirs = inbox 'odd "name" \ here' C:\windows\only
        foo.watch_locks = true
        foo.stop_on_error = true
        foo.actions = process, copy, notify
        foo.action.process.func = mymodule:my_processor_function
        foo.action.process.args = /some/other/path, "tab	and ümlaut"
        foo.action.process.kwarg.something = 42
        foo.action.process.retry_attempts = 3
        foo.action.process.retry_delay = 5
        foo.action.copy.cmd = cp {path} "/srv/x/{filename}"
        foo.action.notify.class = mymodule:Notifier
        foo.action.retry_attempts = 3
        the bar.dirs = inbox
        the bar.process_existing = false
        the bar.actions = a
        the bar.action.a.cmd = ls {path}
        the bar.action.a.kwarg.shell = off
    """)


def test_to_toml_reads_back_as_the_same_config(tmp_path: Path, inbox: Path) -> None:
    path = _full_example(tmp_path, inbox)
    text = to_toml(path)
    raw, warnings = ini_to_raw(path)
    assert tomllib.loads(text) == raw
    assert "# action 'process': foo.action.process.func = mymodule:my_processor_function" in text
    assert "# Rattail profile 'the bar'" in text
    assert r"# - profile 'foo': 'C:\windows\only' is a Windows path; dropped on this system" in text
    assert warnings and all(w.splitlines()[0] in text for w in warnings)


def test_converted_config_validates(tmp_path: Path, inbox: Path) -> None:
    path = _full_example(tmp_path, inbox)
    config = ferryman_config.validate(tomllib.loads(to_toml(path)))
    assert list(config.flows) == ["foo", "the bar"]
    assert [s.label for s in config.flows["foo"].steps] == ["process", "copy", "notify"]
    loaded = ferryman_config.load(path)
    assert loaded.config == config
    converted = tmp_path / "ferryman.toml"
    converted.write_text(to_toml(path), encoding="utf-8")
    assert "# - [rattail.filemon] " in converted.read_text()  # a comment, not a section: read as TOML
    assert ferryman_config.load(converted).config == config


@given(st.text())
def test_toml_strings_round_trip(text: str) -> None:
    assert tomllib.loads(f"{tw.key(text) if text else tw.string(text)} = {tw.string(text)}\n") == {text: text}


@given(st.dictionaries(st.text(), st.recursive(
    st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8)))
@example({"0\n": []})  # a key ending in a newline is not a bare key
def test_toml_values_round_trip(table: dict[str, object]) -> None:
    assert tomllib.loads("\n".join(tw.assignments(table))) == table


def test_file_config_reads_like_rattails(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [app]
        name = demo
        flag = on
        count = 3
        items = a, "b c"
    """)
    config = FileConfig(path)
    assert config.get("app", "name") == "demo" and config.get("app", "missing", default="x") == "x"
    assert config.getbool("app", "flag") is True and config.getint("app", "count") == 3
    assert config.getlist("app", "items") == ["a", "b c"]
    assert config.get_dict("app")["here"] == str(tmp_path)
    with pytest.raises(LookupError, match=r"please set 'nope' in the \[app\] section"):
        config.require("app", "nope")


def test_other_warnings(tmp_path: Path, inbox: Path) -> None:
    path = write(tmp_path, f"""
        [rattail.mail]
        send_emails = true

        [rattail.filemon]
        monitor = foo, FOO
        foo.dirs = {inbox}
        foo.fallback_watcher_enable = true
        foo.fallback_watcher_delay = 5
        foo.actions = a
        foo.action.a.func = m:f
    """)
    assert ini_to_raw(path)[1] == [
        "[rattail.filemon] monitor lists 'FOO' twice",
        "[rattail.filemon] foo.fallback_watcher_*: Windows-only polling; ferryman's folder source rescans "
        "every folder every minute anyway",
        "[rattail.mail]: ferryman does not send rattail's filemon_action_error email; declare a "
        "[notify.NAME] and list it in each flow's notify",
    ]
