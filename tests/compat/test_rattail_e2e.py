"""The File Monitor documentation's example configs, run by the real `ferryman` command.

Every test runs twice: on the rattail INI file itself, and on the TOML that
`ferryman convert` makes of it — both must produce the same calls.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from rattail_site import Site, stop

T0 = time.time() - 3600  # modification times in the past: arrival order is set explicitly


@pytest.fixture(params=["ini", "toml"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    return Site(tmp_path, request.param)


SPELLINGS = [
    "foo, bar, baz",
    "foo,bar,baz",
    "foo bar baz",
    "\n             foo\n             bar\n             baz",
    "\n             foo,\n             bar baz",
]


# The spelling is gone once converted: every spelling from the INI, one through the TOML.
@pytest.mark.parametrize(("form", "monitor"), [*(("ini", m) for m in SPELLINGS), ("toml", SPELLINGS[-1])])
def test_monitor_list_spellings(tmp_path: Path, form: str, monitor: str) -> None:
    site = Site(tmp_path, form)
    for n, key in enumerate(("foo", "bar", "baz")):
        site.drop(site.folder(key), f"{key}.csv", mtime=T0 + n)
    site.drop(site.folder("other"), "other.csv")
    site.configure(f"""
        [rattail.filemon]
        monitor = {monitor}
        foo.dirs = foo
        foo.actions = process
        foo.action.process.func = rtactions:process
        foo.action.process.kwarg.profile = foo
        bar.dirs = bar
        bar.actions = process
        bar.action.process.func = rtactions:process
        bar.action.process.kwarg.profile = bar
        baz.dirs = baz
        baz.actions = process
        baz.action.process.func = rtactions:process
        baz.action.process.kwarg.profile = baz
        other.dirs = other
        other.actions = process
        other.action.process.func = rtactions:process
    """)
    site.once()
    calls = sorted((c["kwargs"]["profile"], Path(c["path"]).name) for c in site.calls())
    assert calls == [("bar", "bar.csv"), ("baz", "baz.csv"), ("foo", "foo.csv")]


def test_dirs_with_spaces_and_multiple_dirs(site: Site) -> None:
    first = site.folder("some/path/to/watch")
    second = site.folder("another/path with spaces")
    site.drop(second, "one.csv", mtime=T0 + 1)
    site.drop(first, "two.csv", mtime=T0 + 2)
    site.drop(second, "three.csv", mtime=T0 + 3)
    site.configure(f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs =
             {first}
             "another/path with spaces"
        foo.actions = process
        foo.action.process.func = rtactions:process
    """)
    site.once()
    assert [c["path"] for c in site.calls()] == [
        str(second / "one.csv"), str(first / "two.csv"), str(second / "three.csv")]
    assert all(c["exists"] and c["args"] == [] and c["kwargs"] == {} for c in site.calls())
    assert all(p.exists() for p in (second / "one.csv", first / "two.csv"))  # after = "keep"


def test_func_class_and_cmd_actions_with_args_and_kwargs(site: Site) -> None:
    """The documentation's action examples, one profile each: func with args and kwargs mixed,
    class (built once, with the config), cmd through a shell and without one."""
    out = site.folder("out")
    spaced = site.folder("out with spaces")
    site.drop(site.folder("funcs"), "f.csv")
    site.drop(site.folder("classes"), "a.csv", mtime=T0)
    site.drop(site.folder("classes"), "b.csv", mtime=T0 + 1)
    site.drop(site.folder("commands"), "c.csv", text="payload")
    site.configure(f"""
        [site]
        greeting = hello

        [rattail.filemon]
        monitor = funcs, classes, commands

        funcs.dirs = funcs
        funcs.actions = process, second
        funcs.action.process.func = rtactions:process
        funcs.action.process.args = /some/other/path, 42, True
        funcs.action.second.func = rtactions:second
        funcs.action.second.args = /some/other/path "with spaces"
        funcs.action.second.kwarg.something = 42
        funcs.action.second.kwarg.Another = /some/other/path

        classes.dirs = classes
        classes.actions = process
        classes.action.process.class = rtactions:Processor
        classes.action.process.args = x
        classes.action.process.kwarg.y = z

        commands.dirs = commands
        commands.actions = copy, copy_no_shell, process
        commands.action.copy.cmd = cp {{path}} {out}/{{filename}}.copied && echo {{{{braces}}}} > {out}/braces
        commands.action.copy_no_shell.cmd = cp {{path}} "{spaced}/{{filename}}"
        commands.action.copy_no_shell.kwarg.shell = false
        commands.action.process.func = rtactions:process
    """)
    site.once()
    calls = site.calls()
    funcs = [c for c in calls if c["path"].endswith("f.csv")]
    assert [(c["action"], c["args"], c["kwargs"]) for c in funcs] == [
        ("process", ["/some/other/path", "42", "True"], {}),
        ("second", ["/some/other/path", "with spaces"], {"something": "42", "another": "/some/other/path"}),
    ]
    assert funcs[0]["path"] == str(site.root / "funcs" / "f.csv")

    init = [c for c in calls if c["action"] == "init"]
    assert [c["args"] for c in init] == [["funcs, classes, commands", "hello"]]
    assert [(Path(c["path"]).name, c["args"], c["kwargs"]) for c in calls if c["action"] == "Processor"] == [
        ("a.csv", ["x"], {"y": "z"}), ("b.csv", ["x"], {"y": "z"})]

    assert (out / "c.csv.copied").read_text() == "payload"
    assert (out / "braces").read_text().strip() == "{braces}"
    assert (spaced / "c.csv").read_text() == "payload"
    assert [c["action"] for c in calls if c["path"].endswith("c.csv")] == ["process"]


def test_a_failing_action_skips_the_rest_for_that_file_only(site: Site) -> None:
    inbox = site.folder("in")
    for n, name in enumerate(("a.csv", "b.csv", "c.csv")):
        site.drop(inbox, name, mtime=T0 + n)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = process, check, second
        foo.action.process.func = rtactions:process
        foo.action.check.func = rtactions:fail_on
        foo.action.check.args = b.csv
        foo.action.second.func = rtactions:second
    """)
    done = site.once(expect=1)
    assert site.seen() == [
        ("process", "a.csv"), ("fail_on", "a.csv"), ("second", "a.csv"),
        ("process", "b.csv"), ("fail_on", "b.csv"),
        ("process", "c.csv"), ("fail_on", "c.csv"), ("second", "c.csv"),
    ]
    assert "cannot handle b.csv" in done.stdout + done.stderr
    again = site.once(expect=1)  # nothing is handled twice; the failed file waits for `ferryman retry`: exit 1
    assert len(site.calls()) == 8
    assert "1 failed item from earlier runs still wait" in again.stdout


def test_stop_on_error(site: Site) -> None:
    inbox = site.folder("in")
    for n, name in enumerate(("a.csv", "b.csv", "c.csv")):
        site.drop(inbox, name, mtime=T0 + n)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = check
        foo.action.check.func = rtactions:fail_on
        foo.action.check.args = a.csv
        foo.stop_on_error = true
    """)
    site.once(expect=1)
    assert site.seen() == [("fail_on", "a.csv")]
    paused = site.once(expect=1)  # the failure still waits (1 wins over the pause's 4)
    assert site.seen() == [("fail_on", "a.csv")]  # still paused
    assert "foo is paused" in paused.stdout
    site.run("dismiss", "--failed")
    assert site.once(expect=4).stdout.strip().endswith("exit 4: a flow is paused")
    assert "foo resumed" in site.run("resume", "foo").stdout
    site.once()
    assert site.seen() == [("fail_on", "a.csv"), ("fail_on", "b.csv"), ("fail_on", "c.csv")]


def test_retries_and_the_same_exception_type_rule(site: Site) -> None:
    for key in ("recovers", "exhausted", "changes", "waits"):
        site.drop(site.folder(key), f"{key}.csv")
    site.configure("""
        [rattail.filemon]
        monitor = recovers, exhausted, changes, waits
        waits.dirs = waits
        waits.actions = flaky
        waits.action.flaky.func = rtactions:flaky
        waits.action.flaky.args = 1
        waits.action.flaky.retry_attempts = 2
        waits.action.flaky.retry_delay = 1
        recovers.dirs = recovers
        recovers.actions = flaky, second
        recovers.action.flaky.func = rtactions:flaky
        recovers.action.flaky.args = 2
        recovers.action.flaky.retry_attempts = 3
        recovers.action.second.func = rtactions:second
        exhausted.dirs = exhausted
        exhausted.actions = flaky, second
        exhausted.action.flaky.func = rtactions:flaky
        exhausted.action.flaky.args = 5
        exhausted.action.flaky.retry_attempts = 3
        exhausted.action.flaky.retry_delay = 0
        exhausted.action.second.func = rtactions:second
        changes.dirs = changes
        changes.actions = changing, second
        changes.action.changing.func = rtactions:changing
        changes.action.changing.retry_attempts = 5
        changes.action.second.func = rtactions:second
    """)
    done = site.once(expect=1)
    by_file: dict[str, list[str]] = {}
    for action, name in site.seen():
        by_file.setdefault(name, []).append(action)
    assert by_file == {
        "recovers.csv": ["flaky", "flaky", "flaky", "second"],
        "exhausted.csv": ["flaky", "flaky", "flaky"],
        "changes.csv": ["changing", "changing"],
        "waits.csv": ["flaky", "flaky"],
    }
    assert "failed at flaky (attempt 1): OSError: attempt 1 failed; retrying in 1s" in done.stderr
    assert "failed at changing after 2 attempt(s): KeyError" in done.stderr
    waits = next(i for i in json.loads(site.run("history", "--json", "--flow", "waits").stdout))
    assert [(s["name"], s["outcome"]) for s in waits["steps"]] == [("flaky", "failed"), ("flaky", "done")]


def test_actions_that_move_or_delete_the_file(site: Site) -> None:
    inbox = site.folder("in")
    archive = site.folder("archive")
    site.drop(inbox, "a.csv", mtime=T0)
    site.drop(inbox, "b.csv", mtime=T0 + 1)
    site.configure(f"""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = archive, second
        foo.action.archive.func = rtactions:archive
        foo.action.archive.args = "{archive}"
        foo.action.second.func = rtactions:second
    """)
    site.once()
    calls = site.calls()
    assert [(c["action"], Path(c["path"]).name, c["exists"]) for c in calls] == [
        ("archive", "a.csv", True), ("second", "a.csv", False),
        ("archive", "b.csv", True), ("second", "b.csv", False)]
    assert sorted(p.name for p in archive.iterdir()) == ["a.csv", "b.csv"]
    site.drop(inbox, "a.csv", text="a new file with the same name")
    site.once()
    assert site.seen()[4:] == [("archive", "a.csv"), ("second", "a.csv")]


def test_a_file_that_vanished_before_its_turn_is_skipped(site: Site) -> None:
    inbox = site.folder("in")
    site.drop(inbox, "a.csv", mtime=T0)
    site.drop(inbox, "b.csv", mtime=T0 + 1)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = remove
        foo.action.remove.func = rtactions:remove_sibling
        foo.action.remove.args = b.csv
    """)
    site.once()
    assert site.seen() == [("remove_sibling", "a.csv")]
    assert "skipped" in site.run("history").stdout


def test_daemon_takes_files_dropped_while_it_runs(site: Site) -> None:
    inbox = site.folder("in")
    site.drop(inbox, "early.csv", mtime=T0)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = process, delete
        foo.action.process.func = rtactions:process
        foo.action.delete.func = rtactions:delete
    """)
    daemon = site.start()
    try:
        site.wait_calls(2)
        site.drop(inbox, "late.csv")
        site.wait_calls(4)
        site.drop(inbox, "early.csv", text="again, a new file")
        site.wait_calls(6)
    finally:
        log = stop(daemon)
    assert daemon.returncode == 0, log
    assert site.seen() == [("process", "early.csv"), ("delete", "early.csv"),
                           ("process", "late.csv"), ("delete", "late.csv"),
                           ("process", "early.csv"), ("delete", "early.csv")]
    assert list(inbox.iterdir()) == []


def test_daemon_process_existing_false(site: Site) -> None:
    inbox = site.folder("in")
    site.drop(inbox, "old.csv", mtime=T0)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.process_existing = false
        foo.actions = process
        foo.action.process.func = rtactions:process
    """)
    assert "nothing to do" in site.once().stdout  # the first start: old.csv was already there
    daemon = site.start()
    try:
        site.drop(inbox, "new.csv")
        site.wait_calls(1)
    finally:
        log = stop(daemon)
    assert daemon.returncode == 0, log
    assert site.seen() == [("process", "new.csv")]


def test_daemon_watch_locks(site: Site) -> None:
    inbox = site.folder("in")
    (inbox / "held.csv.lock").mkdir()  # rattail's locking_copy makes the lock a folder
    site.drop(inbox, "held.csv", mtime=T0)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = /nowhere, in
        foo.watch_locks = true
        foo.actions = process
        foo.action.process.func = rtactions:process
    """)
    daemon = site.start()
    try:
        lock = inbox / "copied.csv.lock"
        lock.mkdir()
        site.drop(inbox, "copied.csv")
        (inbox / "lockfile.csv.lock").write_text("")  # a lock may also be a plain file
        site.drop(inbox, "lockfile.csv")
        time.sleep(0.5)  # the files are complete, but locked: nothing may happen yet
        assert site.calls() == []
        lock.rmdir()
        site.wait_calls(1)
        os.remove(inbox / "lockfile.csv.lock")
        site.wait_calls(2)
        (inbox / "held.csv.lock").rmdir()
        site.wait_calls(3)
    finally:
        log = stop(daemon)
    assert daemon.returncode == 0, log
    assert site.seen() == [("process", "copied.csv"), ("process", "lockfile.csv"), ("process", "held.csv")]
    assert "folder '/nowhere' does not exist" in site.warnings()


def test_check_reports_what_runs(site: Site) -> None:
    site.folder("in")
    site.configure("""
        [rattail.filemon]
        monitor = foo, gone
        foo.dirs = in
        foo.actions = process
        foo.action.process.func = rtactions:process
        foo.action.process.retry_attempts = 0
        gone.dirs = /no/such/folder
        gone.actions = process
        gone.action.process.func = rtactions:process
    """)
    assert "ok — flows: foo;" in site.run("check").stdout
    warnings = site.warnings()
    assert "[rattail.filemon] foo.action.process.retry_attempts = 0 is below the minimum; 1 is used" in warnings
    assert "profile 'gone' has no folder to watch and is not run" in warnings


def test_config_errors_exit_2(tmp_path: Path) -> None:
    site = Site(tmp_path, "ini")
    site.folder("in")
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = process
        foo.action.process.func = rtactions:process
        foo.action.process.cmd = true
    """)
    done = site.run("check", expect=2)
    assert "action 'process': needs exactly one of" in done.stderr
    converted = site.run("run", "--once", expect=2)
    assert "needs exactly one of" in converted.stderr
    from support import ferryman

    done = ferryman("convert", str(site.config), env=site.env)
    assert done.returncode == 2 and "needs exactly one of" in done.stderr


def test_converted_toml_matches_the_ini_calls(tmp_path: Path) -> None:
    """The same site twice, side by side: identical calls from the INI and from its conversion."""
    results = []
    for form in ("ini", "toml"):
        site = Site(tmp_path / form, form)
        inbox = site.folder("in")
        for n, name in enumerate(("a.csv", "b.csv")):
            site.drop(inbox, name, mtime=T0 + n)
        site.configure("""
            [rattail.filemon]
            monitor = foo
            foo.dirs = in
            foo.actions = process, flaky, second
            foo.action.process.func = rtactions:process
            foo.action.process.args = 1 "two words"
            foo.action.process.kwarg.Three = 3
            foo.action.flaky.func = rtactions:flaky
            foo.action.flaky.args = 1
            foo.action.flaky.retry_attempts = 2
            foo.action.second.class = rtactions:Processor
        """)
        site.once()
        results.append([(c["action"], Path(c["path"]).name, c["args"], c["kwargs"]) for c in site.calls()])
    assert results[0] == results[1]


def test_a_retrying_file_holds_later_files_back(site: Site) -> None:
    """Rattail retried inside the profile's single action thread: no later file overtakes a retry."""
    inbox = site.folder("in")
    site.drop(inbox, "a.csv", mtime=T0)
    site.drop(inbox, "b.csv", mtime=T0 + 1)
    site.configure("""
        [rattail.filemon]
        monitor = foo
        foo.dirs = in
        foo.actions = flaky, second
        foo.action.flaky.func = rtactions:flaky
        foo.action.flaky.args = 1
        foo.action.flaky.retry_attempts = 2
        foo.action.second.func = rtactions:second
    """)
    site.once()
    assert site.seen() == [("flaky", "a.csv"), ("flaky", "a.csv"), ("second", "a.csv"),
                           ("flaky", "b.csv"), ("flaky", "b.csv"), ("second", "b.csv")]
