"""The folder source on real folders with real inotify: filters, readiness, watching, disposal, why."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ferryman.errors import PermanentError, UnsafeInput
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources import SOURCES
from ferryman.sources.folder import FolderSource, FolderSourceConfig
from ferryman.sources.folder.dispose import move_without_overwrite
from ferryman.transports import TransportPool
from support import wait_for

# watchdog warns when `mkdir -p a/b` makes it watch b twice (the source silences it outside pytest,
# which resets warning filters for every test).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

# ---- helpers ---------------------------------------------------------------------------------


def source(tmp_path: Path, journal: Any = None, **config: Any) -> FolderSource:
    """A folder source of flow "t" watching `tmp_path/in` unless told otherwise."""
    config.setdefault("path", "in")
    context = FlowContext(flow="t", root=tmp_path / ".ferryman", config_dir=tmp_path, connections={},
                          transports=TransportPool({}), journal=journal)
    return FolderSource(FolderSourceConfig(type="folder", **config), context)


def put(path: Path, data: str = "x", mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def item_for(candidate: Candidate) -> Item:
    return Item(id="i1", flow="t", key=candidate.key, origin=candidate.origin, meta=dict(candidate.meta),
                files=list(candidate.files))


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    return folder


class Watching:
    """`watch()` running in a thread, collecting what it emits."""

    def __init__(self, src: FolderSource) -> None:
        self.src = src
        self.emitted: list[Candidate] = []
        self.batches = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=src.watch, args=(self.emit, self.stop), name="watch")

    def emit(self, candidates: list[Candidate]) -> None:
        with self._lock:
            self.emitted.extend(candidates)
            self.batches += 1

    def names(self) -> list[str]:
        with self._lock:
            return [c.meta["relpath"] for c in self.emitted]

    def wait_names(self, *names: str, timeout: float = 10) -> None:
        wait_for(lambda: set(names) <= set(self.names()), timeout=timeout)


@pytest.fixture
def watching() -> Iterator[Any]:
    """Start `watch()` on a source (waiting until inotify watches); stopped and joined after the test."""
    started: list[Watching] = []

    def start(src: FolderSource, *, wait: bool = True) -> Watching:
        w = Watching(src)
        started.append(w)
        w.thread.start()
        if wait and src.config.watch == "auto":
            assert src.watching.wait(10), "the observer did not start"
        return w

    yield start
    for w in started:
        w.stop.set()
    for w in started:
        w.thread.join(10)
        assert not w.thread.is_alive(), "watch() did not return after stop"


# ---- registry and config -------------------------------------------------------------------------


def test_registered_as_folder() -> None:
    assert SOURCES["folder"] is FolderSource


CONFIG_ERRORS = [
    ({}, "give either path or paths"),
    ({"path": "a", "paths": ["b"]}, "give either path or paths"),
    ({"paths": []}, "paths is empty"),
    ({"path": "a", "after": {"move": "archive/{when}"}}, "unknown template field {when}"),
    ({"path": "a", "after_failure": {"move": "bad/{meta}"}}, "write meta fields as {meta.KEY}"),
    ({"path": "a", "after": "remove"}, "Input should be 'keep' or 'delete'"),
    ({"path": "a", "after_failure": "delete"}, "Input should be 'keep'"),
    ({"path": "a", "recursive": True, "after": {"move": "{now:%Y}"}}, "must start with a fixed folder"),
    ({"path": "a", "meta_from_name": "(?P<name>.*)"}, "clashes with the built-in meta key"),
    ({"path": "a", "ready": "closed"}, "Input should be 'auto', 'stable', 'lock' or 'done_file'"),
    ({"path": "a", "settle": "soon"}, "'soon' is not a duration"),
    ({"path": "a", "done_suffix": ""}, "a suffix must be non-empty"),
    ({"path": "a", "rescan": "0s"}, "greater than 0"),
    ({"path": "a", "recurse": True}, "Extra inputs are not permitted"),
]


@pytest.mark.parametrize(("config", "message"), CONFIG_ERRORS, ids=[m for _, m in CONFIG_ERRORS])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        FolderSourceConfig.model_validate({"type": "folder", **config})
    assert message in str(caught.value)


def test_config_defaults_and_every_field_described() -> None:
    config = FolderSourceConfig.model_validate({"type": "folder", "path": "in"})
    assert (config.ready, config.watch, config.existing, config.after, config.after_failure) == \
        ("auto", "auto", "process", "keep", "keep")
    assert (config.settle, config.rescan, config.done_suffix, config.lock_suffix) == (2.0, 60.0, ".done", ".lock")
    for name, field in FolderSourceConfig.model_fields.items():
        assert field.description, f"{name} has no description"


# ---- scanning ------------------------------------------------------------------------------------


def test_scan_offers_oldest_first_with_meta_and_key(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "b.csv", mtime=1_000_000)
    put(inbox / "a.csv", "aa", mtime=1_000_000)  # same mtime: by path
    put(inbox / "c.csv", mtime=900_000)
    (inbox / "folder").mkdir()
    found = source(tmp_path, settle="0s").scan()
    assert [c.meta["name"] for c in found] == ["c.csv", "a.csv", "b.csv"]
    a = found[1]
    path = str(inbox / "a.csv")
    st = os.stat(path)
    assert a.key == f"{path}|2|{st.st_mtime_ns}"
    assert a.files == (Path(path),) and a.origin == path and a.order == st.st_mtime
    assert a.meta["path"] == path and a.meta["dir"] == str(inbox) and a.meta["relpath"] == "a.csv"
    assert a.meta["size"] == "2"
    assert datetime.fromisoformat(a.meta["mtime"]).timestamp() == 1_000_000


def test_a_changed_file_is_a_new_key_and_an_unchanged_one_is_not_offered_again(
        tmp_path: Path, inbox: Path) -> None:
    put(inbox / "a.csv", mtime=1_000_000)
    src = source(tmp_path, settle="0s")
    first = src.scan()
    assert len(first) == 1
    assert src.scan() == []  # unchanged: not offered twice
    put(inbox / "a.csv", "changed", mtime=1_000_100)
    second = src.scan()
    assert len(second) == 1 and second[0].key != first[0].key


def test_ignores_hidden_temporary_and_marker_files_by_default(tmp_path: Path, inbox: Path) -> None:
    for name in ["ok.csv", ".hidden.csv", "a.csv.in_progress", "b.part", "c.tmp", "d.csv.lock", "e.csv.done"]:
        put(inbox / name)
    assert [c.meta["name"] for c in source(tmp_path, settle="0s").scan()] == ["ok.csv"]
    everything = source(tmp_path, settle="0s", ignore=[], ignore_hidden=False).scan()
    assert len(everything) == 7


def test_include_exclude_on_names_and_relative_paths(tmp_path: Path, inbox: Path) -> None:
    for rel in ["a.csv", "b.zip", "c.txt", "skip_me.csv", "sub/d.csv", "sub/e.txt", "other/f.csv",
                ".dot/g.csv", "x.csv.lock/host.123"]:
        put(inbox / rel)
    flat = source(tmp_path, settle="0s", include=["*.csv", "*.zip"], exclude=["skip_*"]).scan()
    assert sorted(c.meta["relpath"] for c in flat) == ["a.csv", "b.zip"]
    deep = source(tmp_path, settle="0s", recursive=True, include=["*.csv", "sub/*"],
                  exclude=["other/*"]).scan()
    assert sorted(c.meta["relpath"] for c in deep) == ["a.csv", "skip_me.csv", "sub/d.csv", "sub/e.txt"]


def test_paths_watches_several_folders(tmp_path: Path) -> None:
    put(tmp_path / "one" / "a.csv", mtime=1)
    put(tmp_path / "two" / "b.csv", mtime=2)
    found = source(tmp_path, path=None, paths=["one", str(tmp_path / "two")], settle="0s").scan()
    assert [(c.meta["name"], c.meta["dir"]) for c in found] == \
        [("a.csv", str(tmp_path / "one")), ("b.csv", str(tmp_path / "two"))]


def test_meta_from_name_adds_groups_and_leaves_other_names_alone(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "jane.doe@example.com_bmgf.csv")
    put(inbox / "notes.txt")
    src = source(tmp_path, settle="0s", meta_from_name=r"(?P<to>.+)_(?P<db>[^_]+)\.csv$")
    [found] = src.scan()
    assert (found.meta["to"], found.meta["db"]) == ("jane.doe@example.com", "bmgf")
    assert "does not match meta_from_name" in str(src.explain(str(inbox / "notes.txt")))


def test_vanished_entries_are_skipped_quietly(tmp_path: Path, inbox: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    (inbox / "dangling.csv").symlink_to(inbox / "gone.csv")  # listed, but stat fails like a vanished file
    put(inbox / "ok.csv")
    with caplog.at_level(logging.WARNING):
        assert [c.meta["name"] for c in source(tmp_path, settle="0s").scan()] == ["ok.csv"]
    assert not caplog.records


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_files_wait_with_a_warning(tmp_path: Path, inbox: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    secret = put(inbox / "locked.csv")
    secret.chmod(0)
    src = source(tmp_path, settle="0s")
    assert src.scan() == []
    assert "not readable" in caplog.text
    secret.chmod(0o644)
    assert len(src.scan()) == 1


def test_missing_folder_is_a_warning_not_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = source(tmp_path, path="not-mounted-yet", settle="0s")
    assert src.scan() == []
    assert "not-mounted-yet does not exist" in caplog.text
    put(tmp_path / "not-mounted-yet" / "a.csv")
    assert len(src.scan()) == 1


# ---- readiness -----------------------------------------------------------------------------------


def test_scan_waits_once_for_a_file_written_just_now(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "fresh.csv")
    assert [c.meta["name"] for c in source(tmp_path, settle="300ms").scan()] == ["fresh.csv"]


def test_stable_leaves_a_file_that_keeps_changing(tmp_path: Path, inbox: Path) -> None:
    growing = put(inbox / "growing.csv")
    put(inbox / "done.csv")
    stop = threading.Event()

    def writer() -> None:
        with growing.open("a") as f:
            while not stop.is_set():
                f.write("more\n")
                f.flush()
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        found = source(tmp_path, ready="stable", settle="400ms").scan()
    finally:
        stop.set()
        thread.join()
    assert [c.meta["name"] for c in found] == ["done.csv"]


def test_lock_mode_waits_for_lock_files_and_lock_folders(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "a.csv")
    put(inbox / "b.csv")
    put(inbox / "c.csv")
    (inbox / "a.csv.lock").mkdir()  # rattail's locking_copy: the lock is a folder
    put(inbox / "a.csv.lock" / "host-thread.1234")
    put(inbox / "b.csv.lock")
    src = source(tmp_path, ready="lock", recursive=True)
    assert [c.meta["name"] for c in src.scan()] == ["c.csv"]
    assert src.explain(str(inbox / "a.csv")) == "waiting for a.csv.lock to disappear"
    assert "lock folder" in str(src.explain(str(inbox / "a.csv.lock" / "host-thread.1234")))
    (inbox / "b.csv.lock").unlink()
    assert [c.meta["name"] for c in src.scan()] == ["b.csv"]


def test_done_file_mode_waits_for_the_done_file(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "a.csv")
    put(inbox / "b.csv")
    put(inbox / "b.csv.ok")
    src = source(tmp_path, ready="done_file", done_suffix=".ok")
    assert [c.meta["name"] for c in src.scan()] == ["b.csv"]
    assert src.explain(str(inbox / "a.csv")) == "waiting for its done file a.csv.ok"
    put(inbox / "a.csv.ok")
    assert [c.meta["name"] for c in src.scan()] == ["a.csv"]


# ---- watching ------------------------------------------------------------------------------------


def test_watch_offers_existing_files_then_a_file_when_it_is_closed(
        tmp_path: Path, inbox: Path, watching: Any) -> None:
    put(inbox / "old2.csv", mtime=2_000)
    put(inbox / "old1.csv", mtime=1_000)
    w = watching(source(tmp_path, settle="0s"))
    w.wait_names("old1.csv", "old2.csv")
    assert w.names() == ["old1.csv", "old2.csv"]
    with (inbox / "new.csv").open("w") as f:
        f.write("half")
        f.flush()
        time.sleep(0.3)  # the writer is slow: nothing may be offered while it writes
        assert "new.csv" not in w.names()
        f.write(" and the rest")
    w.wait_names("new.csv")
    [new] = [c for c in w.emitted if c.meta["name"] == "new.csv"]
    assert new.meta["size"] == str(len("half and the rest"))


def test_watch_offers_files_renamed_into_the_folder(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, settle="1h"))
    put(tmp_path / "elsewhere.csv", mtime=1_000)
    os.rename(tmp_path / "elsewhere.csv", inbox / "moved-in.csv")
    put(inbox / "upload.csv.part")
    os.rename(inbox / "upload.csv.part", inbox / "upload.csv")
    w.wait_names("moved-in.csv", "upload.csv")
    assert len(w.emitted) == 2


def test_watch_offers_a_rewritten_file_again_but_not_the_same_one_twice(
        tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, settle="100ms", rescan="200ms"))
    put(inbox / "a.csv", "one")
    w.wait_names("a.csv")
    time.sleep(0.5)  # two reconciliation scans see it again: not offered again
    assert len(w.emitted) == 1
    put(inbox / "a.csv", "two!")
    wait_for(lambda: len(w.emitted) == 2)
    assert w.emitted[0].key != w.emitted[1].key


def test_watch_recursive_sees_new_sub_folders(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, recursive=True, settle="200ms", rescan="1h"))
    put(inbox / "sub" / "deeper" / "a.csv")
    w.wait_names("sub/deeper/a.csv")
    put(tmp_path / "batch" / "b.csv")
    os.rename(tmp_path / "batch", inbox / "batch")  # a whole folder moved in
    w.wait_names("batch/b.csv")


def test_watch_stable_mode_offers_after_settle(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, ready="stable", settle="300ms", rescan="1h"))
    put(inbox / "a.csv")
    w.wait_names("a.csv")


def test_watch_lock_mode_offers_when_the_lock_goes(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, ready="lock", rescan="1h"))
    (inbox / "a.csv.lock").mkdir()
    put(inbox / "a.csv")
    put(inbox / "b.csv.lock")
    put(inbox / "b.csv")
    time.sleep(0.3)
    assert w.names() == []
    (inbox / "a.csv.lock").rmdir()
    w.wait_names("a.csv")
    (inbox / "b.csv.lock").unlink()
    w.wait_names("b.csv")


def test_watch_done_file_mode_offers_when_the_done_file_appears(
        tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, ready="done_file", rescan="1h"))
    put(inbox / "a.csv")
    time.sleep(0.3)
    assert w.names() == []
    put(inbox / "a.csv.done")
    w.wait_names("a.csv")
    assert w.names() == ["a.csv"]


def test_watch_poll_mode(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, watch="poll", rescan="100ms", settle="100ms"))
    put(inbox / "a.csv")
    w.wait_names("a.csv")
    assert not w.src.watching.is_set()


def test_watch_waits_for_a_missing_folder(tmp_path: Path, watching: Any,
                                          caplog: pytest.LogCaptureFixture) -> None:
    w = watching(source(tmp_path, path="share", settle="0s"), wait=False)
    wait_for(lambda: "share does not exist" in caplog.text)
    put(tmp_path / "share" / "a.csv")  # the share gets mounted
    w.wait_names("a.csv")
    put(tmp_path / "share" / "b.csv")
    w.wait_names("b.csv")


def test_watch_restarts_a_dead_observer_and_rescans(tmp_path: Path, inbox: Path, watching: Any) -> None:
    src = source(tmp_path, settle="0s", rescan="1h")
    w = watching(src)
    observer = src.observer
    assert observer is not None
    observer.stop()  # the observer thread dies: events are lost from here on
    observer.join()
    put(inbox / "while-dead.csv")
    w.wait_names("while-dead.csv")  # found by the rescan after the restart
    assert src.observer is not observer
    put(inbox / "after.csv")
    w.wait_names("after.csv")


def test_watch_recovers_from_a_real_inotify_queue_overflow(
        tmp_path: Path, inbox: Path, watching: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Overflow the kernel queue for real: hold watchdog's reader back while ~10,000 files arrive.

    The kernel keeps at most fs.inotify.max_queued_events (16384 here) events per
    inotify instance; the rest are dropped and IN_Q_OVERFLOW is queued.  Files whose
    events were dropped can only be found by the rescan the overflow triggers
    (the periodic rescan is an hour away).
    """
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 100_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to overflow it quickly")
    count = limit // 2 + 2048  # two events per file (create, close) plus one read buffer
    src = source(tmp_path, settle="0s", rescan="1h")
    w = watching(src)
    observer = src.observer
    assert observer is not None
    reader_lock = observer._inotify_fd._lock  # type: ignore[attr-defined]
    with reader_lock:
        for n in range(count):
            put(inbox / f"f{n:05}.csv")
    wait_for(lambda: len({c.origin for c in w.emitted}) >= count, timeout=60)
    assert len({c.origin for c in w.emitted}) == count
    assert "inotify queue overflowed" in caplog.text


def test_stop_is_prompt_and_leaves_no_thread(tmp_path: Path, inbox: Path) -> None:
    before = set(threading.enumerate())
    w = Watching(source(tmp_path, rescan="1h"))
    w.thread.start()
    assert w.src.watching.wait(10)
    w.stop.set()
    w.thread.join(5)
    assert not w.thread.is_alive()
    wait_for(lambda: not [t for t in threading.enumerate() if t not in before and t.is_alive()])


# ---- existing = "ignore" ----------------------------------------------------------------------


def test_existing_ignore_survives_a_restart(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "before.csv")
    put(inbox / "touched-later.csv")
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        first = source(tmp_path, journal, existing="ignore", settle="0s")
        assert "has not run yet" in str(first.explain(str(inbox / "before.csv")))
        assert first.scan() == []
        assert "already there when the flow first started" in str(first.explain(str(inbox / "before.csv")))
    finally:
        journal.close()
    time.sleep(0.01)
    put(inbox / "new.csv")
    put(inbox / "touched-later.csv", "rewritten")
    journal = SqliteJournal(tmp_path / "journal.db")  # the restart
    try:
        again = source(tmp_path, journal, existing="ignore", settle="0s")
        assert sorted(c.meta["name"] for c in again.scan()) == ["new.csv", "touched-later.csv"]
    finally:
        journal.close()


def test_existing_ignore_in_watch_mode(tmp_path: Path, inbox: Path, watching: Any) -> None:
    put(inbox / "before.csv")
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        w = watching(source(tmp_path, journal, existing="ignore", settle="100ms"))
        time.sleep(0.02)  # file times tick every few ms: be sure after.csv is newer than before.csv
        put(inbox / "after.csv")
        w.wait_names("after.csv")
        time.sleep(0.2)
        assert w.names() == ["after.csv"]
    finally:
        w.stop.set()
        w.thread.join(10)
        journal.close()


# ---- disposal ------------------------------------------------------------------------------------


def test_after_keep_delete(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "kept.csv")
    src = source(tmp_path, settle="0s")
    [c] = src.scan()
    src.finalize(item_for(c), Outcome(True))
    assert (inbox / "kept.csv").exists()

    put(inbox / "deleted.csv")
    src = source(tmp_path, settle="0s", after="delete", include=["deleted.csv"])
    [c] = src.scan()
    src.finalize(item_for(c), Outcome(True))
    assert not (inbox / "deleted.csv").exists()
    src.finalize(item_for(c), Outcome(True))  # already gone: fine


def test_after_move_renders_the_folder_and_never_overwrites(tmp_path: Path, inbox: Path) -> None:
    src = source(tmp_path, settle="0s", meta_from_name=r"(?P<kind>[a-z]+)_\d+\.csv$",
                 after={"move": "archive/{now:%Y-%m}/{meta.kind}"})
    month = datetime.now().strftime("%Y-%m")
    target = inbox / "archive" / month / "people"
    put(target / "people_1.csv", "older copy")
    put(target / "people_1-1.csv", "an even older copy")
    put(inbox / "people_1.csv", "new")
    [c] = src.scan()
    src.finalize(item_for(c), Outcome(True))
    assert not (inbox / "people_1.csv").exists()
    assert (target / "people_1.csv").read_text() == "older copy"
    assert (target / "people_1-2.csv").read_text() == "new"
    assert src.scan() == []  # the archive below the watched folder is never scanned


def test_after_failure_move_to_an_absolute_folder(tmp_path: Path, inbox: Path) -> None:
    failed = tmp_path / "failed"
    src = source(tmp_path, settle="0s", after="delete", after_failure={"move": f"{failed}/{{flow}}"})
    put(inbox / "bad.csv")
    [c] = src.scan()
    src.finalize(item_for(c), Outcome(False, "boom"))
    assert (failed / "t" / "bad.csv").exists() and not (inbox / "bad.csv").exists()


def test_after_failure_keep_by_default(tmp_path: Path, inbox: Path) -> None:
    src = source(tmp_path, settle="0s", after="delete")
    put(inbox / "bad.csv")
    [c] = src.scan()
    src.finalize(item_for(c), Outcome(False, "boom"))
    assert (inbox / "bad.csv").exists()


def test_done_file_is_disposed_of_with_its_file(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "a.csv")
    put(inbox / "a.csv.done")
    put(inbox / "b.csv")
    put(inbox / "b.csv.done")
    src = source(tmp_path, ready="done_file", after="delete", after_failure={"move": "failed"})
    a, b = src.scan()
    src.finalize(item_for(a), Outcome(True))
    src.finalize(item_for(b), Outcome(False, "boom"))
    assert sorted(p.name for p in inbox.iterdir()) == ["failed"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["b.csv", "b.csv.done"]


def test_a_file_changed_after_pickup_is_not_disposed_of(tmp_path: Path, inbox: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    put(inbox / "a.csv", "one", mtime=1_000)
    src = source(tmp_path, settle="0s", after="delete")
    [c] = src.scan()
    put(inbox / "a.csv", "two", mtime=2_000)
    src.finalize(item_for(c), Outcome(True))
    assert (inbox / "a.csv").read_text() == "two"
    assert "changed after it was picked up" in caplog.text


def test_disposal_errors_reach_the_engine_and_nothing_moves(tmp_path: Path, inbox: Path) -> None:
    src = source(tmp_path, settle="0s", meta_from_name=r"(?P<kind>.+)\.csv$",
                 after={"move": "archive/{meta.kind}"})
    put(inbox / "a.csv")
    [c] = src.scan()
    hostile = item_for(c)
    hostile.meta["kind"] = "../../etc"
    with pytest.raises(UnsafeInput, match="climbs out"):  # the engine journals it as the flow's problem
        src.finalize(hostile, Outcome(True))
    assert (inbox / "a.csv").exists()


def test_move_without_overwrite_across_file_systems(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another file system")
    original = put(tmp_path / "a.csv", "data")
    folder = shm / f"ferryman-test-{os.getpid()}"
    try:
        put(folder / "a.csv", "taken")
        moved = move_without_overwrite(str(original), folder)
        assert moved.name == "a-1.csv" and moved.read_text() == "data" and not original.exists()
        assert sorted(p.name for p in folder.iterdir()) == ["a-1.csv", "a.csv"]
    finally:
        for p in folder.iterdir():
            p.unlink()
        folder.rmdir()


# ---- why -------------------------------------------------------------------------------------------


def test_explain(tmp_path: Path, inbox: Path) -> None:
    src = source(tmp_path, include=["*.csv", "*.part"], exclude=["*_old.csv"], settle="1h")
    for name in [".hidden.csv", "up.part", "x_old.csv", "notes.txt", "fresh.csv"]:
        put(inbox / name)
    put(inbox / "old.csv", mtime=1_000)
    (inbox / "dir.csv").mkdir()
    why = {name: src.explain(str(inbox / name)) for name in
           [".hidden.csv", "up.part", "x_old.csv", "notes.txt", "fresh.csv", "old.csv", "dir.csv", "gone.csv"]}
    assert why == {
        ".hidden.csv": "ignored: hidden file (ignore_hidden = true)",
        "up.part": "ignored: matches '*.part', a temporary or marker file (see `ignore`)",
        "x_old.csv": "excluded by pattern '*_old.csv'",
        "notes.txt": "not matched by include ['*.csv', '*.part']",
        "fresh.csv": why["fresh.csv"],
        "old.csv": why["old.csv"],
        "dir.csv": "a folder, not a file",
        "gone.csv": "no such file",
    }
    assert str(why["fresh.csv"]).startswith("waiting for it to settle")
    assert why["old.csv"] == why["fresh.csv"]  # ctime is now for both: both still settling
    assert src.explain(str(tmp_path / "elsewhere.csv")) is None
    assert src.explain(str(inbox / "sub" / "a.csv")) is None  # not recursive
    assert source(tmp_path, settle="0s").explain(str(inbox / "fresh.csv")) == "ready"
    assert src.key_of(str(inbox / "old.csv")) == f"{inbox / 'old.csv'}|1|{1_000 * 10**9}"


def test_watch_follows_a_symlinked_folder(tmp_path: Path, watching: Any) -> None:
    real = tmp_path / "real-inbox"
    real.mkdir()
    (tmp_path / "in").symlink_to(real)
    w = watching(source(tmp_path, settle="1h", rescan="1h"))
    put(real / "a.csv")
    w.wait_names("a.csv")
    assert w.emitted[0].origin == str(tmp_path / "in" / "a.csv")


def test_watch_survives_the_folder_being_deleted_and_recreated(
        tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, settle="1h", rescan="1h"))
    inbox.rmdir()
    wait_for(lambda: not w.src.watching.is_set())
    inbox.mkdir()
    assert w.src.watching.wait(10)
    put(inbox / "a.csv")
    w.wait_names("a.csv")


def test_disposes_only_when_after_or_after_failure_does_something(tmp_path: Path) -> None:
    assert not source(tmp_path).disposes
    assert source(tmp_path, after="delete").disposes
    assert source(tmp_path, after_failure={"move": "failed"}).disposes


def test_poll_interval_overrides_rescan(tmp_path: Path, inbox: Path, watching: Any) -> None:
    w = watching(source(tmp_path, watch="poll", rescan="1h", poll_interval="100ms", settle="0s"), wait=False)
    put(inbox / "a.csv", mtime=1_000)
    w.wait_names("a.csv")


def test_a_name_that_is_not_utf8_is_left_alone_with_a_warning(
        tmp_path: Path, inbox: Path, caplog: pytest.LogCaptureFixture) -> None:
    with open(os.path.join(os.fsencode(inbox), b"bad\xff.csv"), "w") as f:
        f.write("x")
    put(inbox / "good.csv")
    journal = SqliteJournal(tmp_path / "journal.db")
    try:
        src = source(tmp_path, journal, settle="0s")
        found = src.scan()
        assert [c.meta["name"] for c in found] == ["good.csv"]
        assert len(journal.admit("t", found)) == 1  # nothing in the batch the journal cannot store
    finally:
        journal.close()
    assert "bad\\xff.csv: ignored: its name is not valid UTF-8" in caplog.text
    assert src.explain(os.fsdecode(os.path.join(os.fsencode(inbox), b"bad\xff.csv"))) == \
        "ignored: its name is not valid UTF-8 (rename the file)"


def test_recursive_scan_does_not_follow_symlinked_folders(tmp_path: Path, inbox: Path) -> None:
    put(inbox / "sub" / "a.csv")
    (inbox / "sub" / "loop").symlink_to(inbox)
    found = source(tmp_path, recursive=True, settle="0s").scan()
    assert [c.meta["relpath"] for c in found] == ["sub/a.csv"]


def test_a_move_folder_that_cannot_be_made_is_raised_and_the_file_kept(tmp_path: Path, inbox: Path) -> None:
    put(tmp_path / "archive")  # a file where the archive folder should be
    src = source(tmp_path, settle="0s", after={"move": str(tmp_path / "archive" / "{now:%Y}")})
    put(inbox / "a.csv")
    [c] = src.scan()
    with pytest.raises(OSError):
        src.finalize(item_for(c), Outcome(True))
    assert (inbox / "a.csv").exists()


def test_moving_into_the_folder_the_file_is_in_is_refused(tmp_path: Path, inbox: Path) -> None:
    src = source(tmp_path, settle="0s", after={"move": "."})
    put(inbox / "a.csv")
    [c] = src.scan()
    with pytest.raises(PermanentError, match="is the folder the file is in"):
        src.finalize(item_for(c), Outcome(True))
    assert sorted(p.name for p in inbox.iterdir()) == ["a.csv"]


def test_recursive_never_enters_the_folder_originals_are_moved_to(
        tmp_path: Path, inbox: Path, watching: Any) -> None:
    src = source(tmp_path, recursive=True, settle="0s", rescan="1h", after={"move": "done/{now:%Y}"})
    put(inbox / "done" / "2020" / "old.csv")
    w = watching(src)
    (inbox / "sub").mkdir()
    os.rename(put(tmp_path / "a.csv", mtime=1_000), inbox / "sub" / "a.csv")  # arrives whole, mtime set
    w.wait_names("sub/a.csv")
    [c] = [c for c in w.emitted if c.meta["relpath"] == "sub/a.csv"]
    src.finalize(item_for(c), Outcome(True))
    year = datetime.now().strftime("%Y")
    assert (inbox / "done" / year / "a.csv").exists()
    time.sleep(0.3)
    assert w.names() == ["sub/a.csv"]
    assert "inside the folder originals are moved to" in str(src.explain(str(inbox / "done" / year / "a.csv")))
