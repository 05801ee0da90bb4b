"""``deliver``: copy each file to a folder, FTP, SFTP or S3 — never a partial file under the final name.

The algorithm, written once for every transport:

1. render the destination folder (``to``) and the file name (``name``);
2. if the final name exists: a byte-identical file there is our own earlier
   delivery (a crash between rename and journal), so nothing is written and
   that place is recorded as the delivery (``show`` says where it went); else
   ``if_exists`` decides (overwrite, skip, rename to ``name-1.ext``, fail);
3. write ``<name><temp_suffix>`` (the same temporary name on every attempt,
   so a resumed delivery replaces its own leftover), fsync where possible;
4. verify the size (and the checksum where the transport can tell it cheaply;
   a local ``put`` fails by itself unless every byte was written);
5. rename to the final name (replacing).

Transports whose objects appear only when complete (S3) skip the temporary
name.
"""

from __future__ import annotations

import hashlib
import posixpath
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ferryman import templates
from ferryman.errors import PermanentError, TransientError
from ferryman.flow import FlowContext
from ferryman.item import Item
from ferryman.steps.base import Step, StepConfig, StepContext, StepResult
from ferryman.transports import Location, Transport, parse_location


class DeliverConfig(StepConfig):
    """Copy the item's files to a destination."""

    type: Literal["deliver"]
    to: str = Field(
        description="Destination folder: a local path (relative to the config file) or "
        "ftp://CONN/path, sftp://CONN/path, s3://CONN/bucket/prefix. Templates allowed: "
        "{meta.KEY}, {now:%Y-%m}, {flow} … (the result may not leave the part before the first '{')."
    )
    name: templates.Template = Field("{name}", description="File name template, e.g. '{stem}_{now:%Y%m%d}{suffix}'.")
    if_exists: Literal["overwrite", "skip", "rename", "fail"] = Field(
        "overwrite", description="What to do when a different file already has the final name."
    )
    temp_suffix: str = Field(".in_progress", description="Suffix of the temporary name written first.")
    verify: Literal["size", "checksum"] = Field(
        "size", description="Check the size after writing; 'checksum' also compares SHA-256 where "
        "the transport can compute it (local folders)."
    )
    include: list[str] | None = Field(None, description="Only deliver files whose names match these globs.")
    storage_class: str | None = Field(None, description="S3 only: storage class, e.g. 'STANDARD_IA' or 'GLACIER'.")
    metadata: dict[str, str] = Field(
        default_factory=dict, description="S3 only: user metadata of each object; values are templates ({meta.KEY} …)."
    )

    @model_validator(mode="after")
    def _s3_only(self) -> DeliverConfig:
        if (self.storage_class or self.metadata) and parse_location(self.to).scheme != "s3":
            raise ValueError("storage_class and metadata apply to s3:// destinations only")
        for value in self.metadata.values():
            templates.check(value)
        return self

    @field_validator("to")
    @classmethod
    def _valid_to(cls, value: str) -> str:
        location = parse_location(value)
        templates.check(location.path)
        return value

    @field_validator("temp_suffix")
    @classmethod
    def _valid_suffix(cls, value: str) -> str:
        if not value or "/" in value:
            raise ValueError("temp_suffix must be a non-empty suffix without '/'")
        return value


CLOCK_SKEW = 300.0
"""Seconds a server's clock may lag ours when judging whether a remote file is our own delivery."""


class _Destinations:
    """One lock per destination name, shared by every deliver step of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str | None, str], tuple[threading.Lock, int]] = {}

    @contextmanager
    def hold(self, key: tuple[str, str | None, str]) -> Iterator[None]:
        with self._lock:
            lock, users = self._held.get(key, (threading.Lock(), 0))
            self._held[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._held[key]
                if users == 1:
                    del self._held[key]
                else:
                    self._held[key] = (lock, users - 1)


_DESTINATIONS = _Destinations()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a local file, streamed."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


class DeliverStep(Step[DeliverConfig]):
    """Delivers every file of the item; the item keeps carrying the same files afterwards."""

    Config = DeliverConfig

    def __init__(self, config: DeliverConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        self.location: Location = parse_location(config.to)
        """Where files go; its path is a template rendered per file."""

    def run(self, item: Item, ctx: StepContext) -> StepResult:
        location = self.location
        delivered: list[str] = []
        with self.flow.transports.open(location) as transport:
            for path in ctx.files(self.config.include):
                values = ctx.values(path)
                folder = templates.render_path(location.path, values)
                if location.scheme == "file":
                    folder = str(self.flow.resolve(folder))
                name = templates.render_name(self.config.name, values)
                final = self._deliver(transport, path, folder, name, ctx)
                if final is not None:
                    delivered.append(str(Location(location.scheme, location.connection, final)))
        return StepResult(outputs={"delivered": delivered})

    def _deliver(self, transport: Transport, path: Path, folder: str, name: str,
                 ctx: StepContext) -> str | None:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise PermanentError(f"cannot read {path}: {exc.strerror}") from None
        transport.makedirs(folder)
        wanted = posixpath.join(folder, name)
        # Items of this process delivering to the same name take turns, from the existence check
        # to the rename: they never share a temporary file nor pick the same free name.
        with _DESTINATIONS.hold((self.location.scheme, self.location.connection, wanted)):
            return self._write(transport, path, size, wanted, ctx)

    def _write(self, transport: Transport, path: Path, size: int, wanted: str, ctx: StepContext) -> str | None:
        """Write `path` under `wanted` (or a free numbered name); the name it is under now, or None
        when it is not delivered (``if_exists = skip``)."""
        chosen = self._final_name(transport, path, size, wanted, ctx)
        if chosen is None:
            return None
        final, write = chosen
        if not write:  # our own earlier delivery (a crash before its journaling): it is there
            return final
        if transport.atomic_put:
            options = self._put_options(ctx, path)
            if options:
                put: Any = transport.put  # S3 takes object options
                put(path, final, **options)
            else:
                transport.put(path, final)
            self._verify(transport, path, size, final)
            return final
        temp = final + self.config.temp_suffix
        try:
            transport.put(path, temp)
            self._verify(transport, path, size, temp)
        except Exception:
            self._discard(transport, temp)
            raise
        transport.rename(temp, final)
        return final

    def _put_options(self, ctx: StepContext, path: Path) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.config.storage_class:
            options["storage_class"] = self.config.storage_class
        if self.config.metadata:
            values = ctx.values(path)
            options["metadata"] = {k: templates.render(v, values) for k, v in self.config.metadata.items()}
        return options

    def _discard(self, transport: Transport, temp: str) -> None:
        """Remove a failed upload's temporary file (best effort: the server may be gone)."""
        try:
            transport.remove(temp)
        except Exception as exc:
            self.flow.log.debug("could not remove %s: %s", temp, exc)

    def _final_name(self, transport: Transport, path: Path, size: int, final: str,
                    ctx: StepContext) -> tuple[str, bool] | None:
        """The name the file goes under and whether it must be written (False: an identical
        file is there already, our own earlier delivery); None when it is not delivered."""
        if self.config.if_exists == "overwrite" and ctx.attempt == 1:
            return final, True  # the rename replaces whatever is there: no need to ask first
        existing = transport.stat(final)
        if existing is None:
            return final, True
        if self._same(transport, path, size, final, existing.size, ctx, existing.mtime):
            self.flow.log.info("%s: %s is already there (identical), not written again", self.flow.flow, final)
            return final, False
        mode = self.config.if_exists
        if mode == "overwrite":
            return final, True
        if mode == "skip":
            self.flow.log.info("%s: %s exists, skipped (if_exists = skip)", self.flow.flow, final)
            return None
        if mode == "fail":
            raise PermanentError(f"{final} already exists (if_exists = fail)")
        folder, name = posixpath.split(final)
        for n in range(1, 10_000):
            candidate = posixpath.join(folder, templates.numbered(name, n))
            other = transport.stat(candidate)
            if other is None:
                return candidate, True
            if self._same(transport, path, size, candidate, other.size, ctx, other.mtime):
                self.flow.log.info("%s: %s is already there (identical), not written again",
                                   self.flow.flow, candidate)
                return candidate, False
        raise PermanentError(f"{final}: no free name left (tried 9,999 numbered names)")

    def _same(self, transport: Transport, path: Path, size: int, remote: str, remote_size: int,
              ctx: StepContext, remote_mtime: float | None = None) -> bool:
        """Whether `remote` already holds exactly `path`'s bytes (our own earlier delivery)."""
        if remote_size != size:
            return False
        theirs = transport.checksum(remote)
        if theirs is not None:
            return theirs == file_digest(path)
        # Without a checksum, an equal size counts only when this step ran before for the item and
        # the file was written after the item arrived (yesterday's same-size report is not ours).
        arrived = ctx.item.created_at - CLOCK_SKEW
        return ctx.attempt > 1 and remote_mtime is not None and remote_mtime >= arrived

    def _verify(self, transport: Transport, path: Path, size: int, written: str) -> None:
        if transport.put_checks_size and self.config.verify == "size":
            return
        found = transport.stat(written)
        if found is None or found.size != size:
            got = "nothing" if found is None else f"{found.size} bytes"
            raise TransientError(f"verification failed for {written}: wrote {size} bytes, found {got}")
        if self.config.verify == "checksum":
            theirs = transport.checksum(written)
            if theirs is not None and theirs != file_digest(path):
                raise TransientError(f"verification failed for {written}: SHA-256 differs")
