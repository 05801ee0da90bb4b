"""The ``folder`` source: `config` at the bottom; `ready`, `dispose` and `watch` use it; `source` joins them.

The names below are imported from their modules when first used (`ferryman.registry.exports`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferryman.registry import exports

if TYPE_CHECKING:
    from ferryman.sources.folder.config import FolderSourceConfig
    from ferryman.sources.folder.source import FolderSource

__all__ = ["FolderSource", "FolderSourceConfig"]
__getattr__ = exports(__name__, {"FolderSource": "source", "FolderSourceConfig": "config"})
