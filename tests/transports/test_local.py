"""The transport contract for local folders."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ferryman.transports.base import Transport
from ferryman.transports.local import LocalTransport
from transports.contract import TransportContract


@pytest.fixture
def transport() -> Iterator[Transport]:
    t = LocalTransport()
    yield t
    t.close()


@pytest.fixture
def remote_root(tmp_path: Path) -> str:
    root = tmp_path / "remote"
    root.mkdir()
    return str(root)


class TestLocalTransport(TransportContract):
    pass
