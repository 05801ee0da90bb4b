"""Sources by ``type``.  Adding one: a module here and a line in `SOURCES`."""

from __future__ import annotations

from typing import Any

from ferryman.sources.base import Source, SourceConfig

SOURCES: dict[str, type[Source[Any]]] = {
}
"""Every source type, by its config ``type`` key."""

__all__ = ["SOURCES", "Source", "SourceConfig"]
