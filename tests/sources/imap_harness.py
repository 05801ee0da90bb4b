"""Building `imap` sources against the Dovecot fixture, with a real SQLite journal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.flow import FlowContext
from ferryman.item import Candidate, Item
from ferryman.journal.sqlite import SqliteJournal
from ferryman.sources.imap import ImapSource, ImapSourceConfig
from ferryman.transports import TransportPool
from servers.dovecot import Dovecot

MakeSource = Callable[..., ImapSource]


@pytest.fixture
def make_source(tmp_path: Path) -> Iterator[MakeSource]:
    """``make_source(server, user, connection_overrides=None, **source_config)``; closed after the test."""
    made: list[tuple[ImapSource, SqliteJournal]] = []
    journal = SqliteJournal(tmp_path / "journal.db")

    def make(server: Dovecot, user: str, connection: dict[str, Any] | None = None, **config: Any) -> ImapSource:
        conn = server.connection(user, **(connection or {}))
        flow = FlowContext(flow="t", root=tmp_path / "root", config_dir=tmp_path, connections={"mail": conn},
                           transports=TransportPool({}), journal=journal)
        source = ImapSource(ImapSourceConfig.model_validate({"type": "imap", "connection": "mail", **config}), flow)
        made.append((source, journal))
        return source

    yield make
    for source, _ in made:
        source.close()
    journal.close()


def admit(source: ImapSource, candidates: list[Candidate]) -> list[Item]:
    """What the engine does with a scan's candidates: admit the new ones, durably."""
    return source.flow.journal.admit(source.flow.flow, candidates)
