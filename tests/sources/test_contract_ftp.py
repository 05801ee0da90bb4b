"""The `SourceContract` for the ``ftp`` source, against a real pyftpdlib FTPS server (one per session)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.ftp import FtpServer, ftp_server
from sources.contract import DiskRemotePlace, Place, SourceContract

__all__ = ["ftp_server"]


@pytest.fixture
def place(ftp_server: FtpServer, tmp_path: Path) -> Iterator[Place]:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    drop = DiskRemotePlace("ftp", ftp_server.connection(), f"/{name}", ftp_server.root / name, tmp_path)
    yield drop
    drop.close()


class TestFtpSourceContract(SourceContract):
    pass
