"""`SourceContract`: the promises every source keeps, run against every implementation.

A source's test module subclasses `SourceContract` and provides one fixture,
``place``: a `Place` — a fresh, empty watched folder (or remote folder, or
bucket prefix) on a real server, that can build sources watching it and put,
rewrite, remove and look at originals there.  Originals are plain names in
that folder (the contract does not recurse).

What is promised (DESIGN.md "Sources" and "Promises"):

1. a ready original is offered by `scan()` with a key (and its files, or a
   fetch step that brings them); the key is stable (scanning again, or a new
   source after a restart, gives the same key, and ``key_of`` gives it too), and
   a changed original gets a new one, even at the same size; an original still
   being written is not offered;
2. temporary names (``*.in_progress``, ``*.part``, ``*.tmp``) and hidden files
   are never offered (and `explain` says so), unless ``ignore`` /
   ``ignore_hidden`` say otherwise; a file renamed in from a temporary name is
   offered once, under its final name; odd names (``#``, ``?``, ``%``, non-ASCII,
   spaces) are carried (fetched, where the source fetches) and explained by
   their origin;
3. ``include``/``exclude`` globs (case-sensitive) select what is offered;
   ``recursive`` looks into sub-folders (not hidden ones, and never into the
   folder ``after = {move}`` puts originals in);
4. ``meta_from_name``: named groups land in ``meta``; a non-matching name is
   not offered, and `explain` says why; `explain` is None for what is not the
   source's, and says "no such" for a missing original;
5. `finalize` deletes on success with ``after = "delete"``, moves (never over
   an earlier original) with ``{move = …}``, keeps with ``after = "keep"``,
   never removes after a failure or when the original changed since it was
   processed, takes the done file along, and does not raise when the original
   is already gone (it runs again after a crash);
6. candidates found together come oldest first (``order``);
7. `watch` offers a new original while running and returns soon after `stop`
   is set, leaving no thread behind (the autouse conftest checks).

A source for which a promise does not apply overrides that test with
``pytest.mark.skip(reason=…)`` saying why (see ``test_contract_imap.py``).
Items handed to `finalize` are built from candidates the way the journal's
``admit`` builds them (see `item_of`).  Import it as
``from sources.contract import Place, SourceContract`` (``tests/`` is on ``sys.path``).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from ferryman.connections import ConnectionConfig
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources import SOURCES
from ferryman.sources.base import Source
from ferryman.transports import TransportPool
from support import wait_for

NAME_PATTERN = r"(?P<to>.+)_(?P<db>[^_]+)\.csv$"


class Place(ABC):
    """One test's watched folder: builds sources over it and handles its originals."""

    base_config: dict[str, Any]
    """Config every source built here gets (type, where, a short settle); `source(**config)` adds to it."""

    watch_config: ClassVar[dict[str, Any]] = {}
    """Config that makes `watch` notice a new original quickly (e.g. a short poll_interval)."""

    idle_config: ClassVar[dict[str, Any]] = {}
    """Config under which `watch` would not look again for a long time (to show `stop` cuts the wait)."""

    age_step: ClassVar[float] = 0.0
    """Where `put` cannot set an age, how long to wait between writes so their ages differ."""

    temporary_names_apply: ClassVar[bool] = True
    """False where originals cannot be half-written under a temporary name (a mail is whole once there)."""

    def __init__(self) -> None:
        self._sources: list[Source[Any]] = []

    def source(self, **config: Any) -> Source[Any]:
        """A new source watching this place (closed when the test ends)."""
        built = self.build({**self.base_config, **config})
        self._sources.append(built)
        return built

    @abstractmethod
    def build(self, raw: dict[str, Any]) -> Source[Any]:
        """The source for the raw (TOML-like) config `raw`."""

    @abstractmethod
    def put(self, name: str, data: bytes, age: float | None = None) -> None:
        """Create or rewrite original `name`; `age` seconds old where the place can set it."""

    @abstractmethod
    def exists(self, name: str) -> bool:
        """Whether original `name` is still there."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove original `name` behind the source's back."""

    def rename(self, old: str, new: str) -> None:
        """Rename original `old` to `new` (as a delivery ends); skips the test where nothing renames."""
        pytest.skip(f"{type(self).__name__} has no rename")

    @abstractmethod
    def target(self, name: str) -> str:
        """What `explain` and `key_of` take for original `name` (a path, a URL)."""

    @abstractmethod
    def foreign(self, name: str) -> str:
        """A target of the same kind as `target`, but outside this place (not the source's)."""

    def name_of(self, candidate: Candidate) -> str:
        """The name of the original `candidate` stands for (`put`'s name)."""
        return candidate.meta["name"]

    def names(self, candidates: Iterable[Candidate]) -> list[str]:
        return [self.name_of(c) for c in candidates]

    def one(self, candidates: Iterable[Candidate], name: str) -> Candidate:
        """The one candidate for original `name` among `candidates`."""
        offered = list(candidates)
        found = [c for c in offered if self.name_of(c) == name]
        assert len(found) == 1, f"{name} offered {len(found)} times in {self.names(offered)}"
        return found[0]

    def started(self, source: Source[Any]) -> None:  # noqa: B027 - optional hook
        """Wait until a watching `source` would notice a new original (default: nothing to wait for)."""

    def close(self) -> None:
        for source in self._sources:
            source.close()


class RemotePlace(Place):
    """A folder (or bucket prefix) on a real server, watched by a polled remote source (connection "srv")."""

    watch_config = {"poll_interval": "50ms"}
    idle_config = {"poll_interval": "1h"}

    def __init__(self, scheme: str, conn: ConnectionConfig, remote: str, tmp_path: Path) -> None:
        super().__init__()
        self.scheme = scheme
        self.remote = remote.rstrip("/")
        self.pool = TransportPool({"srv": conn})
        self.flow = FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={"srv": conn},
                                transports=self.pool, journal=None)  # type: ignore[arg-type]
        self.base_config = {"type": scheme, "url": f"{scheme}://srv{self.remote}", "settle": "50ms"}

    def build(self, raw: dict[str, Any]) -> Source[Any]:
        cls = SOURCES[self.scheme]
        return cls(cls.Config.model_validate(raw), self.flow)

    def target(self, name: str) -> str:
        return f"{self.scheme}://srv{self.remote}/{name}"

    def foreign(self, name: str) -> str:
        return f"{self.scheme}://elsewhere{self.remote}/{name}"

    def close(self) -> None:
        super().close()
        self.pool.close()


class LocalFiles:
    """A place's files written straight into the local folder `local`."""

    local: Path

    def put(self, name: str, data: bytes, age: float | None = None) -> None:
        path = self.local / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if age is not None:
            past = time.time() - age
            os.utime(path, (past, past))

    def exists(self, name: str) -> bool:
        return (self.local / name).exists()

    def remove(self, name: str) -> None:
        (self.local / name).unlink()

    def rename(self, old: str, new: str) -> None:
        (self.local / old).rename(self.local / new)


class DiskRemotePlace(LocalFiles, RemotePlace):
    """A remote folder whose server runs here, so that it is also a local folder (sshd, pyftpdlib)."""

    def __init__(self, scheme: str, conn: ConnectionConfig, remote: str, local: Path, tmp_path: Path) -> None:
        super().__init__(scheme, conn, remote, tmp_path)
        self.local = local
        local.mkdir(parents=True, exist_ok=True)


def content_of(source: Source[Any], candidate: Candidate, work_dir: Path) -> bytes:
    """The bytes the item of `candidate` carries: its file, or what the source's fetch step brings."""
    item = item_of(candidate)
    if any(step.get("type") == "fetch" for step in source.implicit_steps):
        from ferryman.steps import STEPS
        from ferryman.steps.base import StepContext

        fetch = STEPS["fetch"](STEPS["fetch"].Config.model_validate({"type": "fetch"}), source.flow)
        work_dir.mkdir(parents=True, exist_ok=True)
        result = fetch.run(item, StepContext(flow=source.flow, item=item, index=0, work_dir=work_dir))
        assert result is not None and result.files is not None
        item.files = list(result.files)
    [only] = item.files
    return only.read_bytes()


def item_of(candidate: Candidate, flow: str = "t") -> Item:
    """The item the journal admits for `candidate` (as `SqlJournal.admit` builds it)."""
    now = time.time()
    return Item(id=uuid.uuid4().hex, flow=flow, key=candidate.key, origin=candidate.origin,
                meta=dict(candidate.meta), files=list(candidate.files), created_at=now, updated_at=now)


class Watching:
    """`watch()` running in a (non-daemon) thread, collecting what it emits."""

    def __init__(self, place: Place, source: Source[Any]) -> None:
        self.place = place
        self.emitted: list[Candidate] = []
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=source.watch, args=(self._emit, self.stop),
                                       name="source-contract-watch")

    def _emit(self, candidates: list[Candidate]) -> None:
        with self._lock:
            self.emitted.extend(candidates)

    def names(self) -> list[str]:
        return self.place.names(self.candidates())

    def candidates(self) -> list[Candidate]:
        with self._lock:
            return list(self.emitted)

    def keys(self, name: str) -> set[str]:
        """The keys original `name` was offered under."""
        return {c.key for c in self.candidates() if self.place.name_of(c) == name}

    def __enter__(self) -> Watching:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "watch() did not return within 10 s of stop"


class SourceContract:
    """Promises every file source keeps.  Subclasses provide the ``place`` fixture."""

    # -- 1. keys --------------------------------------------------------------------------------

    def test_a_ready_original_is_offered_with_a_key(self, place: Place) -> None:
        place.put("report.csv", b"1;2;3\n", age=100)
        source = place.source()
        found = place.one(source.scan(), "report.csv")
        assert found.key
        assert found.origin
        if any(step.get("type") == "fetch" for step in source.implicit_steps):
            assert found.files == (), "a fetched candidate carries no files until fetch"
        else:
            assert found.files, "a candidate carries its original, or the source names a fetch step"
            assert all(f.exists() for f in found.files)

    def test_the_key_is_stable_while_the_original_is_unchanged(self, place: Place) -> None:
        place.put("report.csv", b"1;2;3\n", age=100)
        source = place.source()
        first = place.one(source.scan(), "report.csv")
        # The same source may offer it again or not (the journal drops known keys), never under a new key.
        assert {c.key for c in source.scan() if place.name_of(c) == "report.csv"} <= {first.key}
        # After a restart: a new source offers it under the same key.
        assert place.one(place.source().scan(), "report.csv").key == first.key

    def test_a_changed_original_gets_a_new_key(self, place: Place) -> None:
        place.put("report.csv", b"version one\n", age=100)
        source = place.source()
        first = place.one(source.scan(), "report.csv")
        place.put("report.csv", b"version two, and longer\n", age=50)
        again = place.one(source.scan(), "report.csv")
        assert again.key != first.key
        assert place.one(place.source().scan(), "report.csv").key == again.key

    def test_a_same_size_rewrite_gets_a_new_key(self, place: Place) -> None:
        place.put("report.csv", b"aaaa", age=100)
        first = place.one(place.source().scan(), "report.csv")
        place.put("report.csv", b"bbbb", age=50)
        assert place.one(place.source().scan(), "report.csv").key != first.key

    def test_unicode_and_space_names(self, place: Place) -> None:
        name = "données été 日本.csv"
        place.put(name, name.encode(), age=100)
        place.one(place.source().scan(), name)

    def test_an_original_still_being_written_is_not_offered(self, place: Place) -> None:
        place.put("steady.csv", b"done", age=100)
        writing = threading.Event()
        stop = threading.Event()

        def writer() -> None:
            data = b""
            while not stop.is_set():
                data += b"more data\n"
                place.put("growing.csv", data)
                writing.set()
                stop.wait(0.01)

        thread = threading.Thread(target=writer, name="source-contract-writer")
        thread.start()
        try:
            assert writing.wait(10)
            found = place.source(settle="300ms").scan()
        finally:
            stop.set()
            thread.join(10)
        assert place.names(found) == ["steady.csv"]

    def test_names_with_url_characters_are_carried_and_explained(self, place: Place, tmp_path: Path) -> None:
        odd = ["report #1.csv", "what?.csv", "100%.csv", "a%20b.csv"]
        for name in odd:
            place.put(name, name.encode(), age=100)
        source = place.source()
        found = list(source.scan())
        assert sorted(place.names(found)) == sorted(odd)
        key_of = getattr(source, "key_of", None)
        for n, candidate in enumerate(found):
            name = place.name_of(candidate)
            assert content_of(source, candidate, tmp_path / f"work{n}") == name.encode(), name
            if key_of is not None:  # `ferryman why ORIGIN`, with the origin that status shows
                assert key_of(candidate.origin) == candidate.key, name

    def test_key_of_gives_the_key_a_scan_gives(self, place: Place) -> None:
        place.put("report.csv", b"data", age=100)
        source = place.source()
        found = place.one(source.scan(), "report.csv")
        key_of = getattr(source, "key_of", None)
        if key_of is None:
            pytest.skip(f"{type(source).__name__} has no key_of")
        assert key_of(place.target("report.csv")) == found.key
        assert key_of(place.target("missing.csv")) is None

    # -- 2. temporary and hidden files -------------------------------------------------------------

    def test_temporary_and_hidden_files_are_never_offered(self, place: Place) -> None:
        temporary = ["upload.csv.in_progress", "upload.csv.part", "upload.csv.tmp", ".hidden.csv"]
        for name in [*temporary, "real.csv"]:
            place.put(name, b"data", age=100)
        source = place.source()
        assert place.names(source.scan()) == ["real.csv"]
        for name in temporary:
            why = source.explain(place.target(name))
            assert why is not None and ("ignored" in why or "hidden" in why), f"{name}: {why!r}"

    def test_explain_and_key_of_with_unicode_and_space_names(self, place: Place) -> None:
        name = "données été 日本.csv"
        place.put(name, name.encode(), age=100)
        source = place.source()
        found = place.one(source.scan(), name)
        why = source.explain(place.target(name))
        assert why is not None and "no such" not in why
        key_of = getattr(source, "key_of", None)
        if key_of is not None:
            assert key_of(place.target(name)) == found.key

    def test_explain_of_a_missing_or_foreign_original(self, place: Place) -> None:
        source = place.source()
        assert "no such" in (source.explain(place.target("missing.csv")) or "")
        assert source.explain(place.foreign("missing.csv")) is None
        place.put("here.csv", b"data", age=100)
        assert source.explain(place.foreign("here.csv")) is None

    def test_ignore_and_ignore_hidden_can_be_changed(self, place: Place) -> None:
        every = ["upload.csv.in_progress", "upload.csv.part", ".hidden.csv", "real.csv"]
        for name in every:
            place.put(name, b"data", age=100)
        source = place.source(ignore=["*.part"], ignore_hidden=False)
        assert sorted(place.names(source.scan())) == sorted([".hidden.csv", "real.csv", "upload.csv.in_progress"])

    # -- 3. include / exclude ---------------------------------------------------------------------

    def test_include_and_exclude_select(self, place: Place) -> None:
        for name in ("keep.csv", "skip-me.csv", "other.txt", "SHOUT.CSV"):
            place.put(name, b"data", age=100)
        source = place.source(include=["*.csv"], exclude=["skip*"])
        assert place.names(source.scan()) == ["keep.csv"], "globs are case-sensitive"
        assert "include" in (source.explain(place.target("other.txt")) or "")
        assert "exclude" in (source.explain(place.target("skip-me.csv")) or "")

    def test_recursive(self, place: Place) -> None:
        for name in ("top.csv", "sub/deep.csv", "sub/more/deeper.csv", ".hidden/inside.csv", "sub/.dot.csv"):
            place.put(name, b"data", age=100)
        assert place.names(place.source().scan()) == ["top.csv"]
        deep = place.source(recursive=True).scan()
        assert sorted(c.meta["relpath"] for c in deep) == ["sub/deep.csv", "sub/more/deeper.csv", "top.csv"]
        sub = place.source(recursive=True, include=["sub/*"]).scan()
        assert sorted(c.meta["relpath"] for c in sub) == ["sub/deep.csv", "sub/more/deeper.csv"]

    def test_recursive_never_offers_moved_originals(self, place: Place) -> None:
        config = {"recursive": True, "after": {"move": "archive/{now:%Y}"}}
        place.put("a.csv", b"data", age=100)
        source = place.source(**config)
        source.finalize(item_of(place.one(source.scan(), "a.csv")), Outcome(succeeded=True))
        assert not place.exists("a.csv")
        again = place.source(**config)
        assert place.names(again.scan()) == [], "a moved original would be processed again"
        moved = place.target(f"archive/{time.strftime('%Y')}/a.csv")
        assert "originals are moved to" in (again.explain(moved) or "")

    def test_recursive_move_needs_a_fixed_folder(self, place: Place) -> None:
        with pytest.raises(ValidationError, match="must start with a fixed folder"):
            place.source(recursive=True, after={"move": "{now:%Y}"})

    # -- 4. meta_from_name --------------------------------------------------------------------------

    def test_meta_from_name_groups_land_in_meta(self, place: Place) -> None:
        place.put("jane.doe@example.com_bmgf.csv", b"data", age=100)
        [found] = place.source(meta_from_name=NAME_PATTERN).scan()
        assert found.meta["to"] == "jane.doe@example.com"
        assert found.meta["db"] == "bmgf"

    def test_a_name_not_matching_meta_from_name_is_not_offered_and_explained(self, place: Place) -> None:
        place.put("jane.doe@example.com_bmgf.csv", b"data", age=100)
        place.put("no-underscore.csv", b"data", age=100)
        source = place.source(meta_from_name=NAME_PATTERN)
        assert place.names(source.scan()) == ["jane.doe@example.com_bmgf.csv"]
        why = source.explain(place.target("no-underscore.csv"))
        assert why is not None and "meta_from_name" in why

    # -- 5. finalize ---------------------------------------------------------------------------------

    def test_after_delete_removes_the_original_on_success(self, place: Place) -> None:
        place.put("a.csv", b"data", age=100)
        source = place.source(after="delete")
        assert source.disposes
        item = item_of(place.one(source.scan(), "a.csv"))
        source.finalize(item, Outcome(succeeded=True))
        assert not place.exists("a.csv")
        source.finalize(item, Outcome(succeeded=True))  # again (the engine re-runs it after a crash)

    def test_after_keep_keeps_the_original(self, place: Place) -> None:
        place.put("a.csv", b"data", age=100)
        source = place.source(after="keep")
        assert not source.disposes
        source.finalize(item_of(place.one(source.scan(), "a.csv")), Outcome(succeeded=True))
        assert place.exists("a.csv")
        assert place.names(place.source().scan()) == ["a.csv"]

    def test_a_failed_item_never_removes_its_original(self, place: Place) -> None:
        place.put("a.csv", b"data", age=100)
        source = place.source(after="delete")
        item = item_of(place.one(source.scan(), "a.csv"))
        source.finalize(item, Outcome(succeeded=False, error="PermanentError: boom"))
        assert place.exists("a.csv")

    def test_finalize_of_an_original_already_gone_does_not_raise(self, place: Place) -> None:
        for after in ("delete", {"move": "archive"}):
            place.put("a.csv", b"data", age=100)
            source = place.source(after=after)
            item = item_of(place.one(source.scan(), "a.csv"))
            place.remove("a.csv")
            source.finalize(item, Outcome(succeeded=True))
            source.finalize(item, Outcome(succeeded=False, error="PermanentError: boom"))
            assert not place.exists("a.csv")

    def test_after_move_moves_and_never_overwrites(self, place: Place) -> None:
        place.put("a.csv", b"first", age=100)
        source = place.source(after={"move": "archive"})
        assert source.disposes
        source.finalize(item_of(place.one(source.scan(), "a.csv")), Outcome(succeeded=True))
        assert not place.exists("a.csv")
        assert place.exists("archive/a.csv")
        place.put("a.csv", b"second, longer", age=50)
        again = place.source(after={"move": "archive"})
        found = list(again.scan())
        assert place.names(found) == ["a.csv"], "moved originals are not offered again"
        again.finalize(item_of(found[0]), Outcome(succeeded=True))
        assert place.exists("archive/a.csv") and place.exists("archive/a-1.csv")
        assert not place.exists("a.csv")

    def test_a_version_changed_since_it_was_processed_is_never_removed(self, place: Place) -> None:
        place.put("a.csv", b"version one", age=100)
        source = place.source(after="delete")
        item = item_of(place.one(source.scan(), "a.csv"))
        place.put("a.csv", b"version two, not processed yet", age=50)
        source.finalize(item, Outcome(succeeded=True))
        assert place.exists("a.csv")
        assert place.one(place.source().scan(), "a.csv").key != item.key

    def test_done_files(self, place: Place) -> None:
        place.put("a.csv", b"data", age=100)
        place.put("b.csv", b"data", age=100)
        place.put("b.csv.done", b"", age=100)
        source = place.source(ready="done_file", after="delete")
        item = item_of(place.one(source.scan(), "b.csv"))
        # a.csv waits for its done file, and a done file is never an item itself.
        assert place.names(place.source(ready="done_file").scan()) == ["b.csv"]
        source.finalize(item, Outcome(succeeded=True))
        assert not place.exists("b.csv")
        assert not place.exists("b.csv.done"), "the done file goes with its original"
        assert place.exists("a.csv")

    # -- 6. order -----------------------------------------------------------------------------------

    def test_oldest_first(self, place: Place) -> None:
        oldest_first = ["zulu.csv", "mike.csv", "alpha.csv"]  # not alphabetical
        for age, name in zip((300, 200, 100), oldest_first, strict=True):
            if age != 300:
                time.sleep(place.age_step)
            place.put(name, b"data", age=age)
        found = place.source().scan()
        assert place.names(sorted(found, key=lambda c: (c.order, c.key))) == oldest_first  # as Engine.offer sorts

    # -- 7. watch -----------------------------------------------------------------------------------

    def test_watch_offers_a_new_original(self, place: Place) -> None:
        place.put("old.csv", b"data", age=100)
        source = place.source(**place.watch_config)
        with Watching(place, source) as watching:
            place.started(source)
            wait_for(lambda: "old.csv" in watching.names(), timeout=15)
            if place.temporary_names_apply:
                place.put("new.csv.in_progress", b"half")
                place.put(".new.csv", b"hidden")
            place.put("new.csv", b"fresh data")
            wait_for(lambda: "new.csv" in watching.names(), timeout=15)
        assert "new.csv.in_progress" not in watching.names()
        assert ".new.csv" not in watching.names()
        # Offered again (a rescan) only ever under the same key.
        assert len(watching.keys("new.csv")) == 1

    def test_watch_offers_a_rewritten_original_again_under_a_new_key(self, place: Place) -> None:
        source = place.source(**place.watch_config)
        with Watching(place, source) as watching:
            place.started(source)
            place.put("daily.csv", b"monday")
            wait_for(lambda: "daily.csv" in watching.names(), timeout=15)
            time.sleep(place.age_step)
            place.put("daily.csv", b"tuesday, longer")
            wait_for(lambda: len(watching.keys("daily.csv")) == 2, timeout=15)

    def test_watch_offers_an_original_renamed_in_from_a_temporary_name(self, place: Place) -> None:
        source = place.source(**place.watch_config)
        with Watching(place, source) as watching:
            place.started(source)
            place.put("delivered.csv.in_progress", b"complete data")
            time.sleep(0.3)  # several polls (or events) while only the temporary name exists
            place.rename("delivered.csv.in_progress", "delivered.csv")
            wait_for(lambda: "delivered.csv" in watching.names(), timeout=15)
        assert watching.names() == ["delivered.csv"] * len(watching.names())
        assert len(watching.keys("delivered.csv")) == 1

    def test_watch_returns_soon_after_stop(self, place: Place) -> None:
        source = place.source(**place.idle_config)
        with Watching(place, source):
            place.started(source)
            time.sleep(0.2)  # let it settle into its long wait
        # Watching.__exit__ asserts the thread ended; the autouse fixture checks nothing else leaked.
