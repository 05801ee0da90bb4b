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


@pytest.fixture(params=["localtime", "windows"])
def quirky_place(request: pytest.FixtureRequest, ftp_server: FtpServer, tmp_path: Path) -> Iterator[Place]:
    """The same server, as users for whom it behaves like real-world servers: MDTM in local time but
    MLSD in UTC ("localtime"); no MLSD and no rename onto an existing file, like IIS ("windows")."""
    name = f"contract-{uuid.uuid4().hex[:8]}"
    conn = ftp_server.connection(user=request.param)
    drop = DiskRemotePlace("ftp", conn, f"/{name}", ftp_server.root / name, tmp_path)
    yield drop
    drop.close()


class TestQuirkyFtpSourceContract(SourceContract):
    @pytest.fixture
    def place(self, quirky_place: Place) -> Place:
        return quirky_place
