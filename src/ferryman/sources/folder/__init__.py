"""The ``folder`` source: `config` at the bottom; `ready`, `dispose` and `watch` use it; `source` joins them."""

from ferryman.sources.folder.config import FolderSourceConfig
from ferryman.sources.folder.source import FolderSource

__all__ = ["FolderSource", "FolderSourceConfig"]
