"""The `SourceContract` for the ``folder`` source, on a real local folder with real inotify."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferryman.flow import FlowContext
from ferryman.sources import SOURCES
from ferryman.sources.base import Source
from ferryman.sources.folder import FolderSource
from ferryman.transports import TransportPool
from sources.contract import LocalFiles, Place, SourceContract

# watchdog warns when it watches a folder twice (the source silences it outside pytest).
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


class FolderPlace(LocalFiles, Place):
    watch_config = {"rescan": "1h"}  # inotify must see the new file: no rescan to fall back on
    idle_config = {"rescan": "1h"}

    def __init__(self, tmp_path: Path) -> None:
        super().__init__()
        self.folder = tmp_path / "in"
        self.folder.mkdir()
        self.local = self.folder
        self.flow = FlowContext(flow="t", root=tmp_path / ".ferryman", config_dir=tmp_path, connections={},
                                transports=TransportPool({}), journal=None)  # type: ignore[arg-type]
        self.base_config = {"type": "folder", "path": str(self.folder), "settle": "50ms"}

    def build(self, raw: dict[str, Any]) -> Source[Any]:
        cls = SOURCES["folder"]
        return cls(cls.Config.model_validate(raw), self.flow)

    def target(self, name: str) -> str:
        return str(self.folder / name)

    def foreign(self, name: str) -> str:
        return str(self.folder.parent / "elsewhere" / name)

    def started(self, source: Source[Any]) -> None:
        assert isinstance(source, FolderSource)
        assert source.watching.wait(10), "the inotify observer did not start"


@pytest.fixture
def place(tmp_path: Path) -> Iterator[Place]:
    folder = FolderPlace(tmp_path)
    yield folder
    folder.close()


class TestFolderSourceContract(SourceContract):
    pass


class PolledFolderPlace(FolderPlace):
    """``watch = "poll"`` (network shares inotify does not see): scans every `rescan` only."""

    watch_config = {"rescan": "50ms"}
    idle_config = {"rescan": "1h"}

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.base_config = {**self.base_config, "watch": "poll"}

    def started(self, source: Source[Any]) -> None:
        pass  # no observer to wait for


@pytest.fixture
def polled_place(tmp_path: Path) -> Iterator[Place]:
    folder = PolledFolderPlace(tmp_path)
    yield folder
    folder.close()


class TestPolledFolderSourceContract(SourceContract):
    @pytest.fixture
    def place(self, polled_place: Place) -> Place:
        return polled_place
