"""The generic remote source (as ``sftp`` and ``ftp``) and its ``fetch`` step, against real servers."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ferryman.errors import PermanentError
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources import SOURCES
from ferryman.sources.remote import RemoteSource
from ferryman.steps import STEPS
from ferryman.steps.base import StepContext
from ferryman.transports import TransportPool
from servers.ftp import FtpServer, ftp_server
from servers.sshd import SshServer, fresh_sshd, sshd
from support import wait_for

__all__ = ["fresh_sshd", "ftp_server", "sshd"]


@dataclass
class Drop:
    """A remote folder on a real server, also reachable on local disk for setting up and checking."""

    scheme: str
    conn: Any
    local: Path
    remote: str

    def write(self, rel: str, data: bytes = b"data", age: float = 0) -> Path:
        path = self.local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if age:
            past = time.time() - age
            os.utime(path, (past, past))
        return path


@pytest.fixture(params=["sftp", "ftp"])
def drop(request: pytest.FixtureRequest, tmp_path: Path) -> Drop:
    name = f"drop-{uuid.uuid4().hex[:8]}"
    if request.param == "sftp":
        server: SshServer = request.getfixturevalue("sshd")
        local = tmp_path / name
        local.mkdir()
        return Drop("sftp", server.connection(), local, str(local))
    ftp: FtpServer = request.getfixturevalue("ftp_server")
    local = ftp.root / name
    local.mkdir()
    return Drop("ftp", ftp.connection(), local, f"/{name}")


@pytest.fixture
def flow(drop: Drop, tmp_path: Path) -> Iterator[FlowContext]:
    pool = TransportPool({"srv": drop.conn})
    yield FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={"srv": drop.conn},
                      transports=pool, journal=None)  # type: ignore[arg-type]
    pool.close()


def make(drop: Drop, flow: FlowContext, **config: Any) -> RemoteSource[Any]:
    raw = {"type": drop.scheme, "url": f"{drop.scheme}://srv{drop.remote}", "settle": "50ms", **config}
    cls = SOURCES[drop.scheme]
    return cls(cls.Config.model_validate(raw), flow)  # type: ignore[return-value]


def item_of(candidate: Candidate) -> Item:
    return Item(id=uuid.uuid4().hex, flow="t", key=candidate.key, origin=candidate.origin,
                meta=dict(candidate.meta), files=[])


def names(candidates: list[Candidate]) -> set[str]:
    return {c.meta["relpath"] for c in candidates}


# -- finding --------------------------------------------------------------------------------


def test_scan_lists_without_downloading(drop: Drop, flow: FlowContext) -> None:
    drop.write("a.csv", b"12345", age=100)
    drop.write("b.csv", b"1", age=50)
    found = make(drop, flow).scan()
    assert [c.meta["name"] for c in sorted(found, key=lambda c: c.order)] == ["a.csv", "b.csv"]
    first = next(c for c in found if c.meta["name"] == "a.csv")
    assert first.files == ()
    assert first.meta["remote_url"] == f"{drop.scheme}://srv{drop.remote}/a.csv"
    assert first.meta["remote_path"] == f"{drop.remote}/a.csv"
    assert first.meta["size"] == "5"
    assert first.key == f"{drop.scheme}://srv{drop.remote}/a.csv|5|{first.meta['mtime']}"
    assert first.origin == first.meta["remote_url"]


def test_a_changing_file_waits_until_two_polls_agree(drop: Drop, flow: FlowContext) -> None:
    source = make(drop, flow)
    drop.write("growing.csv", b"part one", age=10)
    assert source.poll() == []  # first sight
    drop.write("growing.csv", b"part one, part two", age=5)
    assert source.poll() == []  # changed since
    ready = source.poll()
    assert names(ready) == {"growing.csv"}
    assert ready[0].meta["size"] == str(len(b"part one, part two"))


def test_a_rewritten_file_is_a_new_key(drop: Drop, flow: FlowContext) -> None:
    drop.write("x.csv", b"v1", age=100)
    before = make(drop, flow).scan()[0].key
    drop.write("x.csv", b"version 2", age=10)
    after = make(drop, flow).scan()[0].key
    assert before != after


def test_done_file_readiness(drop: Drop, flow: FlowContext) -> None:
    source = make(drop, flow, ready="done_file")
    drop.write("a.csv")
    drop.write("b.csv")
    drop.write("b.csv.done", b"")
    assert names(source.scan()) == {"b.csv"}


def test_filters(drop: Drop, flow: FlowContext) -> None:
    for rel in ("keep.csv", "skip.txt", "old.csv", "upload.csv.in_progress", ".hidden.csv",
                "sub/deep.csv", ".git/inside.csv", "part.csv.part"):
        drop.write(rel)
    source = make(drop, flow, include=["*.csv"], exclude=["old*"], recursive=True)
    assert names(source.scan()) == {"keep.csv", "sub/deep.csv"}
    flat = make(drop, flow, include=["*.csv"], exclude=["old*"])
    assert names(flat.scan()) == {"keep.csv"}


def test_meta_from_name_and_explain(drop: Drop, flow: FlowContext) -> None:
    drop.write("jane.doe@example.com_bmgf.csv")
    drop.write("no-underscore.csv")
    source = make(drop, flow, meta_from_name=r"(?P<to>.+)_(?P<db>[^_]+)\.csv$")
    found = source.scan()
    assert len(found) == 1
    assert found[0].meta["to"] == "jane.doe@example.com"
    assert found[0].meta["db"] == "bmgf"
    url = f"{drop.scheme}://srv{drop.remote}"
    assert "does not match meta_from_name" in (source.explain(f"{url}/no-underscore.csv") or "")
    assert "taken once" in (source.explain(f"{url}/jane.doe@example.com_bmgf.csv") or "")
    assert source.explain(f"{url}/missing.csv") == "no such remote file"
    assert source.explain("/some/local/path") is None
    assert source.key_of(f"{url}/jane.doe@example.com_bmgf.csv") == found[0].key
    assert source.key_of(f"{url}/missing.csv") is None


def test_a_missing_remote_folder_is_a_clear_error(drop: Drop, flow: FlowContext) -> None:
    source = make(drop, flow, url=f"{drop.scheme}://srv{drop.remote}/nope")
    with pytest.raises(PermanentError, match="cannot list"):
        source.scan()


# -- fetch ----------------------------------------------------------------------------------


def fetch(flow: FlowContext, item: Item, work: Path) -> list[Path]:
    step_cls = STEPS["fetch"]
    step = step_cls(step_cls.Config.model_validate({"type": "fetch"}), flow)
    work.mkdir(parents=True, exist_ok=True)
    result = step.run(item, StepContext(flow=flow, item=item, index=0, work_dir=work))
    assert result is not None and result.files is not None
    return result.files


def test_the_source_asks_for_fetch_first(drop: Drop, flow: FlowContext) -> None:
    assert make(drop, flow).implicit_steps == ({"type": "fetch"},)


def test_fetch_downloads_into_the_work_folder(drop: Drop, flow: FlowContext, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    drop.write("données été.bin", data, age=10)
    candidate = make(drop, flow).scan()[0]
    files = fetch(flow, item_of(candidate), tmp_path / "work")
    assert [f.name for f in files] == ["données été.bin"]
    assert files[0].parent == tmp_path / "work"
    assert files[0].read_bytes() == data


def test_fetch_of_a_file_that_grew_fails_and_leaves_nothing(drop: Drop, flow: FlowContext,
                                                            tmp_path: Path) -> None:
    drop.write("a.csv", b"short", age=10)
    item = item_of(make(drop, flow).scan()[0])
    drop.write("a.csv", b"much longer now")
    with pytest.raises(PermanentError, match="changed since it was found"):
        fetch(flow, item, tmp_path / "work")
    assert list((tmp_path / "work").iterdir()) == []


def test_fetch_of_a_vanished_file_is_permanent(drop: Drop, flow: FlowContext, tmp_path: Path) -> None:
    path = drop.write("gone.csv", age=10)
    item = item_of(make(drop, flow).scan()[0])
    path.unlink()
    with pytest.raises(PermanentError, match="no such file"):
        fetch(flow, item, tmp_path / "work")


# -- disposing ------------------------------------------------------------------------------


def test_after_delete_removes_the_original_and_its_done_file(drop: Drop, flow: FlowContext) -> None:
    drop.write("a.csv")
    drop.write("a.csv.done", b"")
    source = make(drop, flow, ready="done_file", after="delete")
    assert source.disposes
    item = item_of(source.scan()[0])
    source.finalize(item, Outcome(succeeded=False, error="boom"))
    assert (drop.local / "a.csv").exists(), "a failed item keeps its original"
    source.finalize(item, Outcome(succeeded=True))
    assert not (drop.local / "a.csv").exists()
    assert not (drop.local / "a.csv.done").exists()
    source.finalize(item, Outcome(succeeded=True))  # again, after a crash: no error


def test_after_keep_keeps(drop: Drop, flow: FlowContext) -> None:
    drop.write("a.csv", age=10)
    source = make(drop, flow)
    assert not source.disposes
    source.finalize(item_of(source.scan()[0]), Outcome(succeeded=True))
    assert (drop.local / "a.csv").exists()


def test_a_new_version_is_never_deleted(drop: Drop, flow: FlowContext,
                                        caplog: pytest.LogCaptureFixture) -> None:
    drop.write("a.csv", b"v1", age=100)
    source = make(drop, flow, after="delete")
    item = item_of(source.scan()[0])
    drop.write("a.csv", b"version two", age=1)
    with caplog.at_level(logging.WARNING):
        source.finalize(item, Outcome(succeeded=True))
    assert (drop.local / "a.csv").read_bytes() == b"version two"
    assert "changed since it was processed" in caplog.text


def test_after_move_into_a_dated_remote_folder(drop: Drop, flow: FlowContext) -> None:
    drop.write("a.csv", b"first", age=100)
    source = make(drop, flow, after={"move": "archive/{now:%Y}.d"})
    item = item_of(source.scan()[0])
    source.finalize(item, Outcome(succeeded=True))
    year = time.strftime("%Y")
    assert (drop.local / "archive" / f"{year}.d" / "a.csv").read_bytes() == b"first"
    assert not (drop.local / "a.csv").exists()
    # Another a.csv later: moved beside the first one, never over it.
    drop.write("a.csv", b"second", age=50)
    source2 = make(drop, flow, after={"move": "archive/{now:%Y}.d"})
    source2.finalize(item_of(source2.scan()[0]), Outcome(succeeded=True))
    assert (drop.local / "archive" / f"{year}.d" / "a-1.csv").read_bytes() == b"second"


def test_move_may_not_climb_out(drop: Drop, flow: FlowContext) -> None:
    drop.write("a.csv", age=10)
    source = make(drop, flow, after={"move": "archive/{meta.name}"})
    item = item_of(source.scan()[0])
    item.meta["name"] = "../../etc"
    with pytest.raises(PermanentError):
        source.finalize(item, Outcome(succeeded=True))
    assert (drop.local / "a.csv").exists()


# -- watching -------------------------------------------------------------------------------


def test_watch_rides_out_a_server_outage(request: pytest.FixtureRequest, tmp_path: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    server: SshServer = request.getfixturevalue("fresh_sshd")
    drop = Drop("sftp", server.connection(), tmp_path / "drop", str(tmp_path / "drop"))
    drop.local.mkdir()
    pool = TransportPool({"srv": drop.conn})
    flow = FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={"srv": drop.conn},
                       transports=pool, journal=None)  # type: ignore[arg-type]
    source = make(drop, flow, poll_interval="50ms")
    emitted: list[Candidate] = []
    stop = threading.Event()
    server.stop()
    watcher = threading.Thread(target=source.watch, args=(emitted.extend, stop), daemon=True)
    with caplog.at_level(logging.INFO, logger="ferryman"):
        watcher.start()
        try:
            wait_for(lambda: "cannot list" in caplog.text)
            drop.write("late.csv", age=10)
            time.sleep(0.3)  # several failed polls: still one warning
            server.start()
            wait_for(lambda: emitted, timeout=20)
        finally:
            stop.set()
            watcher.join(5)
            pool.close()
    assert [c.meta["name"] for c in emitted] == ["late.csv"]
    assert caplog.text.count("cannot list") == 1
    assert "can be listed again" in caplog.text


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "message"), [
    ({"type": "sftp"}, "give url = 'sftp://CONNECTION/path', or both connection and path"),
    ({"type": "sftp", "url": "ftp://srv/x"}, "is not sftp://CONNECTION/path"),
    ({"type": "ftp", "url": "ftp://srv/x", "path": "/x"}, "either url or connection and path"),
    ({"type": "ftp", "url": "ftp:///x"}, "names no connection"),
    ({"type": "sftp", "url": "sftp://srv/x", "ready": "auto"}, "'stable' or 'done_file'"),
    ({"type": "sftp", "url": "sftp://srv/x", "meta_from_name": "(?P<size>.+)"}, "clashes"),
    ({"type": "sftp", "url": "sftp://srv/x", "after": {"move": "a/{nope}"}}, "nope"),
    ({"type": "sftp", "url": "sftp://srv/x", "host": "h"}, "Extra inputs"),
])
def test_config_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SOURCES[raw["type"]].Config.model_validate(raw)


def test_connection_and_path_form(tmp_path: Path) -> None:
    config = SOURCES["ftp"].Config.model_validate({"type": "ftp", "connection": "srv", "path": "out"})
    assert str(config.location) == "ftp://srv/out"


def test_after_delete_on_a_server_with_local_time_mdtm(ftp_server: FtpServer, tmp_path: Path) -> None:
    name = f"tz-{uuid.uuid4().hex[:8]}"
    drop = Drop("ftp", ftp_server.connection(user="localtime"), ftp_server.root / name, f"/{name}")
    drop.local.mkdir()
    drop.write("a.csv", age=100)
    pool = TransportPool({"srv": drop.conn})
    flow = FlowContext(flow="t", root=tmp_path, config_dir=tmp_path, connections={"srv": drop.conn},
                       transports=pool, journal=None)  # type: ignore[arg-type]
    try:
        source = make(drop, flow, after="delete")
        source.finalize(item_of(source.scan()[0]), Outcome(succeeded=True))
    finally:
        pool.close()
    assert not (drop.local / "a.csv").exists()
