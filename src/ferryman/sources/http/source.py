"""``http``: records of a JSON API, per collection, become items; acknowledged (deleted) once safe.

One poll of one collection:

1. the response body is streamed into ``raw_dir`` under a hidden ``.part`` name and fsynced;
2. it is parsed from there, streamed (`parse`): not JSON, truncated, a record without an id
   fails the poll, the part file is removed, and nothing is acknowledged or marked;
3. the records above the high-water mark are written, in batches of ``batch``, to fsynced spool
   files (``<root>/spool/<flow>/…``); the raw backup gets its final name (``raw_name``);
4. one durable journal write moves the mark and lists the new batches (`state`); then the
   engine admits one item per batch, keyed ``<collection>:<first id>..<last id>``.  A crash
   between the two leaves batches the journal does not know: the next poll offers them again,
   the same keys from the same spool files, so no record is offered twice under two keys;
5. a record at or below the mark is never offered again.  On a deleteable collection with
   ``delete = true``, one that is not in a batch still waiting for its ack was deleted before:
   it raises one critical alert per record (PIExporter's "previous sensitive data found on
   server"), journaled as a failed item keyed ``replay:<collection>:<id>``.

Acks: `finalize` runs after the journal committed an item as done (its CSV rows fsynced, its raw
backup on disk).  Only then, and only with ``delete = true`` on a deleteable collection, the
source sends the ack request for each record of the batch, from its ack thread (on a connection
of its own), so the deletes of one batch overlap the steps of the next.  A 404 counts as done (a crash cut the
acks short and they are sent again).  A failed ack leaves the batch in the window: it is sent
again at every poll, and raises one critical alert per record (``ack:<collection>:<id>``).  A
failed or skipped item is never acknowledged.

The flow's items run one at a time, in order (`serial`): rows are appended in the order the
server sent the records, and ``ferryman recover`` rebuilds the same files from the backups.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from ferryman import templates
from ferryman.connections import HttpConnection
from ferryman.errors import FerrymanError, PermanentError, describe
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item, Outcome, State
from ferryman.sources.base import Emit, Source
from ferryman.sources.http.client import HttpClient
from ferryman.sources.http.config import CollectionList, HttpSourceConfig
from ferryman.sources.http.parse import Collection, RecordId, collections, order, records
from ferryman.sources.http.state import Batch, CollectionState, load, save
from ferryman.sources.imap.mime import safe_name
from ferryman.sources.schedule.timing import Clock
from ferryman.steps.records import files as records_file
from ferryman.transports.local import fsync_dir

REPLAY = "replay:"
ACK_FAILED = "ack:"
"""Key prefixes of the alert items (journaled as failed, so notified once per record)."""


@dataclass
class Poll:
    """What one poll of one collection found."""

    candidates: list[Candidate]
    new: int = 0


class HttpSource(Source[HttpSourceConfig]):
    """Polls the collections every ``every``; see the module docstring for the mark and the acks."""

    Config = HttpSourceConfig
    implicit_steps: ClassVar[tuple[dict[str, str], ...]] = (
        {"type": "meta", "label": "records", "refuse": "alert"},)
    """An alert item (a replayed record, a failed ack) fails again with its message when retried."""

    def __init__(self, config: HttpSourceConfig, flow: FlowContext) -> None:
        super().__init__(config, flow)
        conn = flow.connection(config.connection, "http")
        assert isinstance(conn, HttpConnection)
        self.client = HttpClient(config.connection, conn, flow.config_dir, config.io_timeout)
        self.raw_dir = flow.resolve(config.raw_dir)
        self.spool = flow.root / "spool" / safe_name(flow.flow, "flow")
        self.clock = Clock(None, config.every, UTC)
        self.ack_client = HttpClient(config.connection, conn, flow.config_dir, config.io_timeout)
        self._lock = threading.RLock()
        self._states: dict[str, CollectionState] = {}
        self._alerts: list[Candidate] = []
        self._acks: queue.Queue[str | None] = queue.Queue()
        self._acker: threading.Thread | None = None

    @property
    def disposes(self) -> bool:
        return True  # the item's end moves the window (and sends acks): it must be durable first

    @property
    def serial(self) -> bool:
        return True

    @property
    def in_order(self) -> bool:
        return True

    # ---- polling -----------------------------------------------------------------------------

    def scan(self) -> list[Candidate]:
        """Poll every collection once; raise when any poll failed (what the others found stays in
        the journal's window and is offered again by the next poll)."""
        found, errors = self.poll()
        if errors:
            raise PermanentError("; ".join(errors))
        return found

    def watch(self, emit: Emit, stop: threading.Event) -> None:
        while not stop.is_set():
            found, errors = self.poll()
            for error in errors:
                self.flow.log.error("%s: %s", self.flow.flow, error)
            # A poll that fails is the flow's problem: told once, with a recovery notice when
            # a poll works again (the old PIExporter mailed on request failures).
            subject = f"source {self.flow.flow}"
            if errors:
                self.flow.problems.report(subject, f"polling failed: {'; '.join(errors)}", origin="poll")
            else:
                self.flow.problems.clear(subject)
            if found:
                emit(found)  # admitted (durable) on return
            now = time.time()
            wait = self.clock.after(datetime.fromtimestamp(now, UTC)).timestamp() - now
            stop.wait(max(wait, 0.05))

    def poll(self) -> tuple[list[Candidate], list[str]]:
        """The candidates of one poll of every collection, and the failures (one line each)."""
        with self._lock:
            found: list[Candidate] = []
            errors: list[str] = []
            try:
                wanted = self._collections()
            except FerrymanError as exc:
                return self._take_alerts(), [f"listing the collections failed: {describe(exc)}"]
            for collection in wanted:
                try:
                    found += self._poll(collection)
                except FerrymanError as exc:
                    errors.append(f"collection {collection.name!r}: {describe(exc)}")
            return found + self._take_alerts(), errors

    def _take_alerts(self) -> list[Candidate]:
        alerts, self._alerts = self._alerts, []
        return alerts

    def _collections(self) -> list[Collection]:
        spec = self.config.collections
        if not isinstance(spec, CollectionList):
            return [Collection(name, self.config.deleteable_by_config(name)) for name in spec]
        answer = self.client.request("GET", spec.list)
        with self.client.errors(answer.url):
            self.client.check_status(answer)
            body = self.client.drain(answer)
        return collections(body, spec.name, spec.deleteable, spec.size, self.config.deleteable)

    def _state(self, name: str) -> CollectionState:
        if name not in self._states:
            self._states[name] = state = load(self.flow.journal, self.flow.flow, name)
            self._sweep(name, state)
        return self._states[name]

    def _sweep(self, name: str, state: CollectionState) -> None:
        """Remove what a poll killed half-way left: part files in raw_dir, spool files of batches the
        journal never listed (their records are above the mark: the next poll fetches them again)."""
        listed = {Path(b.file) for b in state.window}
        folder = self.spool / safe_name(name, "collection")
        if folder.is_dir():
            for path in folder.iterdir():
                if path not in listed:
                    path.unlink(missing_ok=True)
        if self.raw_dir.is_dir():
            for path in self.raw_dir.glob(".*.part"):
                if path.name.removeprefix(".").startswith(name):
                    path.unlink(missing_ok=True)

    def _save(self, name: str) -> None:
        save(self.flow.journal, self.flow.flow, name, self._states[name])

    def _poll(self, collection: Collection) -> list[Candidate]:
        state = self._state(collection.name)
        found = self._unadmitted(state)
        self._settle_window(collection.name, state)
        if collection.size == 0:
            return found
        for _ in range(self.config.records.pages if self.config.records.since_param else 1):
            poll = self._request(collection, state)
            found += poll.candidates
            if not poll.new or not self.config.records.since_param:
                break
        return found

    def _unadmitted(self, state: CollectionState) -> list[Candidate]:
        """Batches listed in the window but never admitted (a crash between the two writes)."""
        keys = [b.key for b in state.window]
        known = self.flow.journal.known(self.flow.flow, keys) if keys else set()
        return [self._candidate(b) for b in state.window if b.key not in known]

    def _request(self, collection: Collection, state: CollectionState) -> Poll:
        name = collection.name
        query = {}
        since = self.config.records.since_param
        if since and state.mark is not None:
            query[since] = str(state.mark)
        path = templates.render(self.config.records.path, {"collection": name, "flow": self.flow.flow})
        url = self.client.url(path, query)
        headers = {}
        if state.validated == url:
            if state.etag:
                headers["If-None-Match"] = state.etag
            if state.modified:
                headers["If-Modified-Since"] = state.modified
        polled = datetime.now().astimezone()
        answer = self.client.request("GET", path, query, headers)
        with self.client.errors(answer.url):
            if answer.status == 304 and headers:
                self.client.drain(answer)
                return Poll([])
            self.client.check_status(answer)
            self.raw_dir.mkdir(parents=True, exist_ok=True)
            raw_name = self._raw_name(name, polled)
            part = self.raw_dir / f".{raw_name}.part"
            self.client.save(answer, part, self.config.max_size)
        try:
            poll = self._split(collection, state, part, raw_name, polled)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        state.etag = answer.headers.get("etag")
        state.modified = answer.headers.get("last-modified")
        state.validated = url if (state.etag or state.modified) else None
        if poll.new:
            self._save(name)
        return poll

    def _raw_name(self, collection: str, polled: datetime) -> str:
        base = templates.render_name(self.config.raw_name, {"collection": collection, "now": polled,
                                                            "flow": self.flow.flow})
        n = 0
        while (self.raw_dir / templates.numbered(base, n)).exists():
            n += 1
        return templates.numbered(base, n)

    def _split(self, collection: Collection, state: CollectionState, part: Path, raw_name: str,
               polled: datetime) -> Poll:
        """Read the saved body: new records into fsynced spool batches, old ones checked for replays;
        then the backup gets its name and the window its batches (not yet saved)."""
        name = collection.name
        folder = self.spool / safe_name(name, "collection")
        stem = raw_name.rsplit(".", 1)[0]
        made: list[Batch] = []
        replayed: list[RecordId] = []
        writer: _BatchWriter | None = None
        new_mark = state.mark
        try:
            for parsed in records(part, self.config.records.list, self.config.records.id):
                if state.below_mark(parsed.id):
                    if self._is_replay(collection, state, parsed.id):
                        replayed.append(parsed.id)
                    continue
                if writer is None:
                    folder.mkdir(parents=True, exist_ok=True)
                    writer = _BatchWriter(folder / f"{stem}-{len(made) + 1}{records_file.SUFFIX}")
                writer.add(parsed.id, parsed.record)
                if new_mark is None or order(parsed.id) > order(new_mark):
                    new_mark = parsed.id
                if writer.count >= self.config.batch:
                    made.append(self._batch(name, writer.close(), raw_name, polled, collection.deleteable))
                    writer = None
            if writer is not None:
                made.append(self._batch(name, writer.close(), raw_name, polled, collection.deleteable))
                writer = None
        except BaseException:
            if writer is not None:
                writer.abort()
            for batch in made:
                Path(batch.file).unlink(missing_ok=True)
            raise
        for value in replayed:
            self._alert(REPLAY, name, value,
                        f"previous sensitive data found on server: collection {name!r} record {value} is at or "
                        f"below the high-water mark {state.mark} and was deleted before")
        if not made:
            part.unlink(missing_ok=True)
            return Poll([])
        fsync_dir(folder)
        os.replace(part, self.raw_dir / raw_name)
        fsync_dir(self.raw_dir)
        state.window.extend(made)
        state.mark = new_mark
        return Poll([self._candidate(b) for b in made], new=sum(b.count for b in made))

    def _is_replay(self, collection: Collection, state: CollectionState, value: RecordId) -> bool:
        return self.config.delete and collection.deleteable and state.in_window(value) is None

    def _batch(self, name: str, written: tuple[Path, RecordId, RecordId, int], raw: str, polled: datetime,
               deleteable: bool) -> Batch:
        path, first, last, count = written
        key = f"{name}:{first}" if count == 1 else f"{name}:{first}..{last}"
        return Batch(key, first, last, count, str(path), raw, polled.isoformat(timespec="seconds"), deleteable)

    def _candidate(self, batch: Batch) -> Candidate:
        name = batch.key.rpartition(":")[0]
        meta = {"collection": name, "first_id": str(batch.first), "last_id": str(batch.last),
                "records": str(batch.count), "raw_file": str(self.raw_dir / batch.raw),
                "polled_at": batch.polled_at, "deleteable": "true" if batch.deleteable else "false"}
        span = f"{batch.first}" if batch.count == 1 else f"{batch.first}..{batch.last}"
        polled = datetime.fromisoformat(batch.polled_at).timestamp()
        return Candidate(batch.key, (Path(batch.file),), meta, polled + order_fraction(batch),
                         f"{name} record(s) {span} ({batch.count})")

    def _alert(self, prefix: str, collection: str, value: RecordId, message: str) -> None:
        self.flow.log.critical("%s: %s", self.flow.flow, message)
        key = f"{prefix}{collection}:{value}"
        self._alerts.append(Candidate(key, (), {"collection": collection, "id": str(value), "alert": message},
                                      time.time(), f"alert: {collection} record {value}",
                                      (State.FAILED, message)))

    # ---- acks ----------------------------------------------------------------------------------

    def finalize(self, item: Item, outcome: Outcome) -> None:
        """After the journal committed the item: acknowledge its records (when it succeeded and
        acks are on), or keep its batch in the window (failed, skipped)."""
        collection = item.meta.get("collection")
        if collection is None or item.key.startswith((REPLAY, ACK_FAILED)):
            return
        with self._lock:
            state = self._state(collection)
            batch = next((b for b in state.window if b.key == item.key), None)
            if batch is None:
                return
            if not (outcome.succeeded and item.state == State.DONE):
                return
            if not (self.config.delete and batch.deleteable):
                self._ack(collection, state, batch)  # nothing to send: the batch leaves the window now
                return
            if self._acker is None:
                self._acker = threading.Thread(target=self._send_acks, name=f"ferryman-acks-{self.flow.flow}",
                                               daemon=True)
                self._acker.start()
        self._acks.put(item.key)  # sent beside the next item's steps: deletes overlap decryption

    def _send_acks(self) -> None:
        """The ack thread: sends the acks of done batches, in the order they ended."""
        while True:
            key = self._acks.get()
            try:
                if key is None:
                    return
                with self._lock:
                    collection = key.rpartition(":")[0]
                    state = self._state(collection)
                    batch = next((b for b in state.window if b.key == key), None)
                    if batch is not None:
                        self._ack(collection, state, batch)
            except Exception as exc:  # the journal failed: the next poll sends them again
                self.flow.log.error("%s: acks of %s: %s", self.flow.flow, key, describe(exc))
            finally:
                self._acks.task_done()

    def wait_acks(self) -> None:
        """Block until the acks queued so far were sent (or failed)."""
        self._acks.join()

    def _settle_window(self, name: str, state: CollectionState) -> None:
        """Send the acks of batches that are done (cut short by a crash, or failed before)."""
        for batch in list(state.window):
            item = self.flow.journal.find(self.flow.flow, batch.key)
            if item is not None and item.state == State.DONE:
                self._ack(name, state, batch)

    def _ack(self, name: str, state: CollectionState, batch: Batch) -> None:
        if batch not in state.window:
            return  # acknowledged meanwhile (by the ack thread, or the poll's look at the window)
        failed: list[str] = []
        if self.config.delete and batch.deleteable:
            state.etag = state.modified = state.validated = None  # deletes change what the server holds
            for value in _ids(Path(batch.file)):
                error = self._ack_one(name, value)
                if error is None:
                    continue
                failed.append(str(value))
                if str(value) not in batch.ack_failed:
                    self._alert(ACK_FAILED, name, value, f"deleting collection {name!r} record {value} on the "
                                f"server failed: {error}; it is safe on disk and the delete is retried at every poll")
        if failed:
            batch.ack_failed = failed
            self._save(name)
            return
        state.window.remove(batch)
        self._save(name)
        Path(batch.file).unlink(missing_ok=True)

    def _ack_one(self, name: str, value: RecordId) -> str | None:
        """Send one ack; None when done (a 404 counts: already gone), else why not."""
        path = templates.render(self.config.ack.path, {"collection": name, "id": value, "flow": self.flow.flow})
        try:
            answer = self.ack_client.request(self.config.ack.method, path)
            with self.ack_client.errors(answer.url):
                if answer.status == 404:
                    self.ack_client.drain(answer)
                    return None
                self.ack_client.check_status(answer)
                self.ack_client.drain(answer)
        except FerrymanError as exc:
            return describe(exc)
        return None

    def close(self) -> None:
        """Send the acks still queued (``run --once`` ends here), then close the connections."""
        if self._acker is not None:
            self._acks.put(None)
            self._acker.join()
            self._acker = None
        self.client.close()
        self.ack_client.close()


def order_fraction(batch: Batch) -> float:
    """Batches of one poll keep their order (the engine sorts candidates by `order`, then key)."""
    return int(Path(batch.file).stem.rsplit("-", 1)[-1]) * 1e-6


def _ids(path: Path) -> Iterator[RecordId]:
    """The ids of a spool file (`ferryman.steps.records.files`)."""
    for value, _ in records_file.read(path):
        yield value


class _BatchWriter:
    """A spool file of one batch: one ``{"id": …, "record": {…}}`` JSON line per record, fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: RecordId | None = None
        self.last: RecordId | None = None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        self._out = open(fd, "w", encoding="utf-8")  # noqa: SIM115 (closed by close / abort)

    def add(self, value: RecordId, record: dict[str, Any]) -> None:
        self._out.write(records_file.line(value, record))
        self.count += 1
        if self.first is None or order(value) < order(self.first):
            self.first = value
        if self.last is None or order(value) > order(self.last):
            self.last = value

    def close(self) -> tuple[Path, RecordId, RecordId, int]:
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        assert self.first is not None and self.last is not None
        return self.path, self.first, self.last, self.count

    def abort(self) -> None:
        self._out.close()
        self.path.unlink(missing_ok=True)


__all__ = ["HttpSource"]
