"""The http source on a real HTTP(S) server (the PIExporter-like API) and a real SQLite journal:
faults fail the poll with one clear line and leave nothing marked, backed up or acknowledged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ferryman.connections import HttpConnection
from ferryman.errors import PermanentError
from ferryman.flow import FlowContext
from ferryman.item import Candidate, Outcome, State
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.http import HttpSource, HttpSourceConfig
from ferryman.steps.records.files import read
from ferryman.transports import TransportPool
from servers.piexporter import PASSWORD, USER, PiServer


@pytest.fixture
def pi(tmp_path: Path) -> Iterator[PiServer]:
    server = PiServer(tmp_path)
    yield server
    server.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteJournal]:
    j = SqliteJournal(tmp_path / "journal.db")
    yield j
    j.close()


class Harness:
    """An http source admitting what it offers, and ending items like the engine would."""

    def __init__(self, tmp_path: Path, journal: SqliteJournal, server: PiServer, auth: Any = "basic",
                 conn: dict[str, Any] | None = None, **config: Any) -> None:
        self.journal = journal
        self.tmp = tmp_path
        self.ids: dict[str, list[Any]] = {}
        auth_config = {"basic": {"user": USER, "password": PASSWORD}} if auth == "basic" else auth
        connection = HttpConnection.model_validate({"type": "http", "base_url": server.base_url,
                                                    "auth": auth_config, "timeout": "3s", **(conn or {})})
        self.context = FlowContext(flow="pi", root=tmp_path / "state", config_dir=tmp_path,
                                   connections={"pi": connection}, transports=TransportPool({}), journal=journal)
        settings = {"type": "http", "connection": "pi", "collections": {"list": ""}, "raw_dir": "raw",
                    "records": {"since_param": "greaterThan"}, **config}
        self.source = HttpSource(HttpSourceConfig.model_validate(settings), self.context)

    def poll(self, finish: bool = True) -> list[Candidate]:
        found = self.source.scan()
        for c in found:
            if c.settled is None:
                self.ids[c.key] = [value for value, _ in read(c.files[0])]
        for item in self.journal.admit("pi", found):
            if finish and item.key.count(":") == 1 and not item.key.startswith(("replay:", "ack:")):
                claimed = self.journal.claim(item.id, "test", 60)
                assert claimed is not None
                claimed.state = State.DONE
                self.journal.finish(claimed)
                self.source.finalize(claimed, Outcome(True))
        self.source.wait_acks()
        return found

    def records(self, found: list[Candidate]) -> list[Any]:
        return [value for c in found if c.settled is None for value in self.ids[c.key]]

    def raw_files(self) -> list[Path]:
        return sorted((self.tmp / "raw").glob("*")) if (self.tmp / "raw").exists() else []

    def close(self) -> None:
        self.source.close()


def test_new_records_are_offered_once_in_batches_with_their_backup(tmp_path: Path, journal: SqliteJournal,
                                                                   pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    for n in range(5):
        pi.add("intake", answer=n)
    h = Harness(tmp_path, journal, pi, batch=2)
    found = h.poll()
    assert [c.key for c in found] == ["intake:1..2", "intake:3..4", "intake:5"]
    assert h.records(found) == [1, 2, 3, 4, 5]
    raw = h.raw_files()
    assert len(raw) == 1 and raw[0].name.startswith("intake_")
    assert json.loads(raw[0].read_text()) == pi.held("intake")  # the body, as it came
    assert found[0].meta["raw_file"] == str(raw[0])
    assert h.poll() == []  # nothing above the mark: nothing again, no new backup
    assert len(h.raw_files()) == 1
    assert pi.since_seen[-1] == 5
    pi.add("intake", answer=6)
    assert h.records(h.poll()) == [6]
    h.close()


def test_the_mark_is_filtered_locally_when_the_server_ignores_since(tmp_path: Path, journal: SqliteJournal,
                                                                    pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    pi.ignore_since = True
    for n in range(3):
        pi.add("intake", answer=n)
    h = Harness(tmp_path, journal, pi)
    assert h.records(h.poll()) == [1, 2, 3]
    pi.add("intake", answer=9)
    assert h.records(h.poll()) == [4]
    h.close()


def test_paging_by_id_takes_every_page_in_one_poll(tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    pi.page_size = 3
    for n in range(8):
        pi.add("intake", answer=n)
    h = Harness(tmp_path, journal, pi, batch=100)
    assert h.records(h.poll()) == list(range(1, 9))
    assert len(h.raw_files()) == 3
    h.close()


def test_an_unchanged_collection_is_answered_not_modified(tmp_path: Path, journal: SqliteJournal,
                                                          pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    pi.add("intake", answer=1)
    h = Harness(tmp_path, journal, pi, records={"since_param": None})
    assert h.records(h.poll()) == [1]
    assert h.poll() == []
    assert pi.not_modified["intake"] == 1
    pi.add("intake", answer=2)
    assert h.records(h.poll()) == [2]
    h.close()


@pytest.mark.parametrize(("fault", "message"), [
    ("500", "HTTP 500"),
    ("reset", "connection"),
    ("truncated", "ended after"),
    ("garbage", "is not JSON"),
    ("noid", "has no 'id' field"),
    ("slow", "timed out"),
])
def test_a_bad_answer_fails_the_poll_and_leaves_nothing(tmp_path: Path, journal: SqliteJournal, pi: PiServer,
                                                        fault: str, message: str) -> None:
    pi.form("intake")
    for n in range(4):
        pi.add("intake", answer=n)
    pi.faults["intake"].append(fault)
    pi.pause = 2.0
    h = Harness(tmp_path, journal, pi, delete=True, io_timeout="300ms")
    with pytest.raises(PermanentError, match=message) as caught:
        h.poll()
    assert "\n" not in str(caught.value) and PASSWORD not in str(caught.value)
    assert h.raw_files() == []  # no backup, not even a part file
    assert journal.get_cursor("pi", "http:intake") is None  # nothing marked
    assert pi.deleted["intake"] == []
    pi.pause = 0.0
    assert h.records(h.poll()) == [1, 2, 3, 4]  # the next poll takes them all
    assert len(pi.deleted["intake"]) == 4
    h.close()


def test_wrong_credentials_fail_with_a_clear_line(tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake")
    h = Harness(tmp_path, journal, pi, auth={"basic": {"user": USER, "password": "not-the-password"}})
    with pytest.raises(PermanentError, match=r"HTTP 401.*refused the login") as caught:
        h.poll()
    assert "not-the-password" not in str(caught.value)
    h.close()


def test_a_bearer_token_logs_in(tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.token = "tok-12345"
    pi.form("intake", deleteable=False)
    pi.add("intake", answer=1)
    h = Harness(tmp_path, journal, pi, auth={"bearer": "tok-12345"})
    assert h.records(h.poll()) == [1]
    h.close()


def test_https_with_a_private_ca(tmp_path: Path, journal: SqliteJournal) -> None:
    server = PiServer(tmp_path, tls=True)
    try:
        server.form("intake", deleteable=False)
        server.add("intake", answer=1)
        h = Harness(tmp_path, journal, server, conn={"ca_file": str(server.cert)})
        assert h.records(h.poll()) == [1]
        h.close()
        untrusted = Harness(tmp_path, journal, server)
        with pytest.raises(PermanentError, match=r"not trusted.*ca_file"):
            untrusted.poll()
        untrusted.close()
    finally:
        server.close()


def test_records_are_deleted_only_after_their_item_is_done(tmp_path: Path, journal: SqliteJournal,
                                                           pi: PiServer) -> None:
    pi.form("intake")
    pi.form("followup", deleteable=False)
    for n in range(3):
        pi.add("intake", answer=n)
    pi.add("followup", answer=0)
    h = Harness(tmp_path, journal, pi, delete=True)
    found = h.poll(finish=False)
    assert len(found) == 2 and pi.deleted["intake"] == []  # admitted, not done: nothing deleted
    assert h.poll(finish=False) == []
    assert pi.deleted["intake"] == []
    item = journal.find("pi", "intake:1..3")
    assert item is not None
    claimed = journal.claim(item.id, "test", 60)
    assert claimed is not None
    claimed.state = State.FAILED
    journal.finish(claimed)
    h.source.finalize(claimed, Outcome(False, "boom"))
    h.poll(finish=False)
    assert pi.deleted["intake"] == []  # a failed item is never acknowledged
    journal.retry([item.id])
    claimed = journal.claim(item.id, "test", 60)
    assert claimed is not None
    claimed.state = State.DONE
    journal.finish(claimed)
    h.source.finalize(claimed, Outcome(True))
    h.source.wait_acks()
    assert [r["id"] for r in pi.deleted["intake"]] == [1, 2, 3]
    assert pi.refused == [] and len(pi.held("followup")) == 1
    h.close()


def test_a_failed_delete_alerts_once_per_record_and_is_retried_at_the_next_poll(
        tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake")
    for n in range(2):
        pi.add("intake", answer=n)
    pi.delete_faults = 10
    h = Harness(tmp_path, journal, pi, delete=True)
    h.poll()
    alerts = [c for c in h.poll() if c.key.startswith("ack:")]
    assert sorted(c.key for c in alerts) == ["ack:intake:1", "ack:intake:2"]
    assert all(c.settled and c.settled[0] == State.FAILED and "HTTP 500" in c.settled[1] for c in alerts)
    assert pi.held("intake") != []
    h.poll()  # still failing: the alerts are not raised again (the journal knows them anyway)
    pi.delete_faults = 0
    h.poll()
    assert pi.held("intake") == []
    assert journal.get_cursor("pi", "http:intake") is not None
    assert json.loads(journal.get_cursor("pi", "http:intake") or "{}")["window"] == []
    h.close()


def test_a_replayed_record_raises_one_alert_per_record(tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake")
    for n in range(3):
        pi.add("intake", answer=n)
    h = Harness(tmp_path, journal, pi, delete=True)
    h.poll()
    assert pi.held("intake") == []
    pi.replay = True
    pi.ignore_since = True
    first = [c.key for c in h.poll() if c.key.startswith("replay:")]
    assert first == ["replay:intake:1", "replay:intake:2", "replay:intake:3"]
    again = h.poll()
    assert {c.key for c in again} <= set(first)  # offered again, the journal admits them once
    assert journal.known("pi", first) == set(first)
    assert pi.deleted["intake"] and len(pi.deleted["intake"]) == 3  # a replay is never deleted again
    h.close()


def test_a_crash_between_the_mark_and_the_admission_offers_the_same_batches(
        tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    for n in range(4):
        pi.add("intake", answer=n)
    h = Harness(tmp_path, journal, pi, batch=2)
    lost = h.source.scan()  # the journal never admitted these: the process died
    h.close()
    pi.add("intake", answer=5)
    again = Harness(tmp_path, journal, pi, batch=2)
    found = again.poll()
    assert [c.key for c in found[:2]] == [c.key for c in lost]
    assert again.records(found) == [1, 2, 3, 4, 5]
    again.close()


def test_a_delete_the_server_refuses_is_an_alert_and_the_record_stays_safe(
        tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("locked", deleteable=False)  # the config claims otherwise; the server says 403
    pi.add("locked", answer=1)
    h = Harness(tmp_path, journal, pi, collections=["locked"], deleteable=True, delete=True)
    h.poll()
    alerts = [c for c in h.poll() if c.key.startswith("ack:")]
    assert [c.key for c in alerts] == ["ack:locked:1"]
    assert alerts[0].settled is not None and "HTTP 403" in alerts[0].settled[1]
    assert pi.refused == [("locked", "1")] * 2 and len(pi.held("locked")) == 1
    h.close()


def test_fixed_collections_and_deleteable_from_the_config(tmp_path: Path, journal: SqliteJournal,
                                                          pi: PiServer) -> None:
    pi.form("intake")
    pi.form("other")
    pi.add("intake", answer=1)
    pi.add("other", answer=2)
    h = Harness(tmp_path, journal, pi, collections=["intake"], deleteable=["intake"], delete=True)
    assert h.records(h.poll()) == [1]
    assert pi.held("intake") == [] and len(pi.held("other")) == 1
    h.close()


def test_leftovers_of_a_poll_killed_half_way_are_swept(tmp_path: Path, journal: SqliteJournal,
                                                       pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    pi.add("intake", answer=1)
    (tmp_path / "raw").mkdir()
    part = tmp_path / "raw" / ".intake_Dec_01_2026_10_00_00.json.part"
    part.write_text("[{")
    spool = tmp_path / "state" / "spool" / "pi" / "intake"
    spool.mkdir(parents=True)
    (spool / "orphan-1.jsonl").write_text("{}")
    h = Harness(tmp_path, journal, pi)
    assert h.records(h.poll()) == [1]
    assert not part.exists() and not (spool / "orphan-1.jsonl").exists()
    h.close()


def test_a_record_id_that_is_not_an_integer_or_string_and_an_object_instead_of_a_list(
        tmp_path: Path, journal: SqliteJournal, pi: PiServer) -> None:
    pi.form("intake", deleteable=False)
    with pi.lock:
        pi.collections["intake"].append({"id": 1.5, "x": "y"})
    h = Harness(tmp_path, journal, pi)
    with pytest.raises(PermanentError, match="id of type float"):
        h.poll()
    h.close()
    listed = Harness(tmp_path, journal, pi, records={"list": "data"})
    with pytest.raises(PermanentError, match=r"no list at records\.list"):
        listed.poll()
    listed.close()


@pytest.mark.parametrize(("snippet", "message"), [
    ({"collections": []}, "collections is empty"),
    ({"collections": ["a", "a"]}, "same name twice"),
    ({"raw_name": "{collection}.json"}, "needs the poll time"),
    ({"raw_name": "x/{now:%Y}.json"}, "no '/'"),
    ({"records": {"list": "a..b"}}, "records.list"),
    ({"records": {"path": "{nope}"}}, "unknown template field"),
])
def test_config_errors(snippet: dict[str, Any], message: str) -> None:
    base = {"type": "http", "connection": "pi", "collections": ["a"], "raw_dir": "raw"}
    with pytest.raises(ValidationError, match=message):
        HttpSourceConfig.model_validate({**base, **snippet})
