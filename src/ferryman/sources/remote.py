"""Remote drops polled over any transport: the shared code of the ``sftp``, ``ftp`` and ``s3`` sources.

Each poll lists the remote folder (or prefix) and keeps the files that pass
`ignore`, hidden-file, `include`/`exclude` and `meta_from_name` filters.  A
file is *ready* when

- ``ready = "stable"`` (default): its size and mtime (or ETag) are the same
  as at the previous poll.  In ``run --once`` the source lists twice,
  `settle` apart;
- ``ready = "done_file"``: ``<file><done_suffix>`` exists beside it.

Listing downloads nothing.  A candidate carries no files, only where its
original is (``meta.remote_url``, ``meta.remote_path``, ``meta.name``,
``meta.size``, ``meta.mtime`` / ``meta.etag``); the source's built-in
``fetch`` step (see `Source.implicit_steps`) downloads it into the item's
work folder as the flow's first step.  The key is
``scheme://connection/path|size|mtime-or-etag``, so a rewritten file is a new
item.  `after` (keep, delete, or move to a remote folder) runs in `finalize`,
after the journal committed the success, and only while the remote file is
still the version that was processed.
"""

from __future__ import annotations

import fnmatch
import posixpath
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field, model_validator

from ferryman import templates
from ferryman.errors import PermanentError, TransientError, describe
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome
from ferryman.sources.base import Emit, FileSelection, MoveTo, Source, Suffix, folder_inside
from ferryman.transports import Location, RemoteFile, Transport, parse_location
from ferryman.units import Duration

BUILTIN_META = ("name", "relpath", "remote_path", "remote_url", "size", "mtime", "etag")
_URL_ESCAPES = {"%": "%25", "#": "%23", "?": "%3F", "\t": "%09", "\n": "%0A", "\r": "%0D"}


class RemoteSourceConfig(FileSelection):
    """Keys of every polled remote source (``sftp``, ``ftp``, ``s3``)."""

    BUILTIN_META = BUILTIN_META

    url: str | None = Field(
        None, description="Where to look: 'sftp://CONNECTION/path' (the scheme is the source type); "
        "or give connection and path."
    )
    connection: str | None = Field(None, description="Name of the [connections.NAME] to use (with path).")
    path: str | None = Field(None, description="Remote folder (or bucket/prefix for s3), with connection.")
    ready: Literal["stable", "done_file"] = Field(
        "stable", description="When a file is complete: 'stable' (size and mtime/ETag unchanged across "
        "two polls) or 'done_file' (<file><done_suffix> exists).",
    )
    done_suffix: Suffix = Field(".done", description="Suffix of done files (ready = 'done_file').")
    settle: Duration = Field(
        2.0, description="With ready = 'stable', how long `run --once` waits between its two listings."
    )
    after: Literal["keep", "delete"] | MoveTo = Field(
        "keep", description="After success: 'keep', 'delete' or {move = 'remote folder template'} "
        "(a done file goes too)."
    )
    poll_interval: Duration = Field(60.0, gt=0, description="How often to list the remote folder.")

    @model_validator(mode="after")
    def _where(self) -> RemoteSourceConfig:
        if self.url is not None:
            if self.connection is not None or self.path is not None:
                raise ValueError("give either url or connection and path, not both")
            location = parse_location(self.url)
            if location.scheme != self.type:
                raise ValueError(f"url {self.url!r} is not {self.type}://CONNECTION/path")
        elif self.connection is None or self.path is None:
            raise ValueError(f"give url = '{self.type}://CONNECTION/path', or both connection and path")
        return self

    @property
    def location(self) -> Location:
        if self.url is not None:
            return parse_location(self.url)
        assert self.connection is not None and self.path is not None
        return Location(self.type, self.connection, self.path)


C = TypeVar("C", bound=RemoteSourceConfig)


def signature(found: RemoteFile) -> str:
    """What tells one version of a remote file from the next: its ETag, else its mtime (seconds)."""
    if found.etag:
        return found.etag
    return str(int(found.mtime)) if found.mtime is not None else ""


def version(found: RemoteFile) -> str:
    """Size and signature: equal versions are the same file, unchanged."""
    return f"{found.size}|{signature(found)}"


def _processed_version(meta: dict[str, str]) -> str:
    return f"{meta.get('size', '')}|{meta.get('etag') or meta.get('mtime', '')}"


class RemoteSource(Source[C]):
    """A polled remote folder; subclasses only name their config and scheme."""

    implicit_steps: ClassVar[tuple[dict[str, Any], ...]] = ({"type": "fetch"},)

    def __init__(self, config: C, flow: FlowContext) -> None:
        super().__init__(config, flow)
        self.location = config.location
        self.root = self.location.path
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()
        self._moved_to = [inside for move in self.config.move_folders()
                          if (inside := folder_inside(self.root, move)) is not None]

    @property
    def disposes(self) -> bool:
        return self.config.after != "keep"

    @contextmanager
    def _transport(self) -> Iterator[Transport]:
        with self.flow.transports.open(self.location) as transport:
            yield transport

    # -- finding ------------------------------------------------------------------------------

    def _listing(self) -> tuple[list[RemoteFile], set[str]]:
        """(files that may become items, every listed path)."""
        with self._transport() as transport:
            listed = list(transport.list(self.root, recursive=self.config.recursive))
        paths = {f.path for f in listed}
        return [f for f in listed if self._why_not(f) is None], paths

    def _relative(self, path: str) -> str:
        base = self.root.strip("/")
        rel = path.strip("/")
        return rel[len(base):].lstrip("/") if base and rel.startswith(base) else rel

    def _why_not(self, found: RemoteFile) -> str | None:
        """Why a listed file is left alone (None when it is taken)."""
        config = self.config
        name = posixpath.basename(found.path)
        rel = self._relative(found.path)
        if name.endswith(config.done_suffix) and config.ready == "done_file":
            return f"it is a done file ({config.done_suffix})"
        for pattern in config.ignore:
            if fnmatch.fnmatchcase(name, pattern):
                return f"ignored by {pattern!r}"
        if config.ignore_hidden and any(part.startswith(".") for part in rel.split("/")):
            return "it is hidden (ignore_hidden = true)"
        if any(rel.startswith(inside + "/") for inside in self._moved_to):
            return "it is in the folder originals are moved to"
        if config.include and not any(
            fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in config.include
        ):
            return f"it matches none of include = {config.include}"
        for pattern in config.exclude:
            if fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(rel, pattern):
                return f"excluded by {pattern!r}"
        if self.meta_from_name(name) is None:
            return f"its name does not match meta_from_name {config.meta_from_name!r}"
        return None

    def poll(self) -> list[Candidate]:
        """List once; the files ready now (stable since the previous poll, or with a done file)."""
        files, paths = self._listing()
        ready: list[Candidate] = []
        with self._lock:
            previous, self._last = self._last, {f.path: version(f) for f in files}
            for found in files:
                if self.config.ready == "done_file":
                    if found.path + self.config.done_suffix in paths:
                        ready.append(self._candidate(found))
                elif previous.get(found.path) == self._last[found.path]:
                    ready.append(self._candidate(found))
        return ready

    def scan(self) -> list[Candidate]:
        """Every file ready now; with ready = 'stable', files not yet seen are listed again after `settle`."""
        ready = self.poll()
        with self._lock:
            waiting = len(self._last) > len(ready)
        if waiting and self.config.ready == "stable":
            time.sleep(self.config.settle)
            ready = self.poll()
        return ready

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        """Poll every `poll_interval`; a server that is down is logged and polled again later."""
        failing = False
        while not stop.is_set():
            try:
                found = self.poll()
            except TransientError as exc:
                if not failing:
                    self.flow.log.warning("%s: cannot list %s: %s", self.flow.flow, self.location, describe(exc))
                self.flow.problems.report(f"source {self.flow.flow}",
                                          f"cannot list {self.location}: {describe(exc)}", origin=str(self.location))
                failing = True
            else:
                if failing:
                    self.flow.log.info("%s: %s can be listed again", self.flow.flow, self.location)
                self.flow.problems.clear(f"source {self.flow.flow}")
                failing = False
                if found:
                    emit(found)
            stop.wait(self.config.poll_interval)

    def _candidate(self, found: RemoteFile) -> Candidate:
        name = posixpath.basename(found.path)
        # '%', '#', '?' (and control characters) would not survive parse_location (unquote, fragment,
        # query): escape them, so that fetch and `why` find this very file; other names stay readable.
        escaped = "".join(_URL_ESCAPES.get(ch, ch) for ch in found.path)
        url = str(Location(self.location.scheme, self.location.connection, escaped))
        meta = {
            "name": name,
            "relpath": self._relative(found.path),
            "remote_path": found.path,
            "remote_url": url,
            "size": str(found.size),
        }
        if found.mtime is not None:
            meta["mtime"] = str(int(found.mtime))
        if found.etag:
            meta["etag"] = found.etag
        meta.update(self.meta_from_name(name) or {})
        return Candidate(key=f"{url}|{found.size}|{signature(found)}", files=(), meta=meta,
                         order=found.mtime or 0.0, origin=url)

    # -- disposing ----------------------------------------------------------------------------

    def finalize(self, item: Item, outcome: Outcome) -> None:
        """Delete or move the remote original after success, if it is still the version processed."""
        after = self.config.after
        if not outcome.succeeded or after == "keep":
            return
        path = item.meta["remote_path"]
        with self._transport() as transport:
            current = transport.stat(path)
            if current is None:
                return  # already disposed of (finalize runs again after a crash)
            if not self._unchanged(transport, current, item.meta):
                self.flow.log.warning("%s: %s changed since it was processed; left in place (it will be "
                                      "picked up as a new item)", self.flow.flow, item.origin)
                return
            done = path + self.config.done_suffix if self.config.ready == "done_file" else None
            if after == "delete":
                transport.remove(path)
                if done:
                    transport.remove(done)
                self.flow.log.debug("%s: deleted %s", self.flow.flow, item.origin)
                return
            assert isinstance(after, MoveTo)
            folder = self._move_folder(after.move, item)
            transport.makedirs(folder)
            target = _free_name(transport, posixpath.join(folder, posixpath.basename(path)))
            transport.rename(path, target)
            if done:
                transport.remove(done)
            self.flow.log.debug("%s: moved %s to %s", self.flow.flow, item.origin, target)

    def _unchanged(self, transport: Transport, current: RemoteFile, meta: dict[str, str]) -> bool:
        """Whether `current` is still the version the item processed.

        The key came from a listing; some FTP servers give MDTM in local time but MLSD in UTC,
        so an equal size with another mtime is checked again the way the key was made."""
        processed = _processed_version(meta)
        if version(current) == processed:
            return True
        if current.etag or str(current.size) != meta.get("size"):
            return False
        folder = posixpath.dirname(current.path) or "."
        for listed in transport.list(folder):
            if posixpath.basename(listed.path) == posixpath.basename(current.path):
                return version(listed) == processed
        return False

    def _move_folder(self, template: str, item: Item) -> str:
        values = templates.fields_for(flow=self.flow.flow, item=item.id, meta=item.meta,
                                      path=item.meta["remote_path"], now=datetime.now())
        if template.startswith("/"):
            return templates.render_path(template, values)
        return templates.render_path(posixpath.join(self.root, template), values, base=self.root)

    def explain(self, path: str) -> str | None:
        """For ``why sftp://CONN/path/file``: whether the file would be taken, and why not."""
        if "://" not in path:
            return None
        where = parse_location(path)
        if (where.scheme, where.connection) != (self.location.scheme, self.location.connection):
            return None
        rel = self._relative(where.path)
        inside = where.path.strip("/").startswith(self.root.strip("/"))
        if not inside or (not self.config.recursive and "/" in rel):
            return f"not in {self.location}" + ("" if self.config.recursive else " (recursive = false)")
        try:
            with self._transport() as transport:
                found = transport.stat(where.path)
        except (TransientError, PermanentError) as exc:
            return f"cannot look at it: {describe(exc)}"
        if found is None:
            return "no such remote file"
        reason = self._why_not(found)
        if reason is not None:
            return f"left alone: {reason}"
        if self.config.ready == "done_file":
            return f"taken once {posixpath.basename(where.path)}{self.config.done_suffix} exists"
        return "taken once its size and mtime stay the same across two polls"


    def key_of(self, path: str) -> str | None:
        """The key the remote file at URL `path` has now (for ``why``'s journal lookup)."""
        if "://" not in path:
            return None
        where = parse_location(path)
        if (where.scheme, where.connection) != (self.location.scheme, self.location.connection):
            return None
        try:
            with self._transport() as transport:
                # From a listing of its folder, as a scan makes keys (some FTP servers give MDTM in
                # local time but MLSD in UTC, so stat would give another mtime).
                name = posixpath.basename(where.path)
                found = next((f for f in transport.list(posixpath.dirname(where.path) or ".")
                              if posixpath.basename(f.path) == name), None)
        except (TransientError, PermanentError):
            return None
        return None if found is None else self._candidate(found).key


def _free_name(transport: Transport, target: str) -> str:
    """`target`, or ``stem-1.ext``, ``stem-2.ext`` … when taken."""
    if transport.stat(target) is None:
        return target
    folder, name = posixpath.split(target)
    for n in range(1, 10_000):
        candidate = posixpath.join(folder, templates.numbered(name, n))
        if transport.stat(candidate) is None:
            return candidate
    raise PermanentError(f"{target}: no free name left to move to")
